package extlinux

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cairn-edge/cairn/agent/bootloader"
)

// The simulated U-Boot below is written from U-Boot 2023.01's sources
// (boot/pxe_utils.c: the tokenizer, parse_pxefile_top, parse_label,
// label_boot, handle_pxe_menu, boot_unattempted_labels; common/menu.c;
// common/cli_simple.c's macro expansion; include/config_distro_bootcmd.h's
// boot_prefixes and boot_syslinux_conf) and kept independent of this
// package's parser on purpose, so that a file this package writes and
// U-Boot reads differently shows.

// simEnv is U-Boot's environment as far as extlinux boots depend on it.
type simEnv struct {
	// fdtAddrR tells whether fdt_addr_r is set: FDT lines are loaded
	// only then (Tegra's environment sets it, qemu_arm64's does not).
	fdtAddrR bool
	// cbsize is CONFIG_SYS_CBSIZE: bootargs hold one byte less.
	cbsize int
}

var (
	simTegra = simEnv{fdtAddrR: true, cbsize: 2048}
	simQEMU  = simEnv{fdtAddrR: false, cbsize: 512}
)

// simLabel is a parsed label as pxe_utils.c keeps it.
type simLabel struct {
	name, kernel, initrd, fdt, fdtdir, appendLine string
	localboot                                     bool
}

// simMenu is a parsed file.
type simMenu struct {
	labels       []*simLabel
	defaultLabel string
	prompt       bool
	timeout      int
}

// simBooted is what U-Boot booted.
type simBooted struct {
	label                string
	kernel, initrd, fdt  string // the files' contents; fdt "" when none was loaded
	bootargs             string
	fellBack, missingDef bool
}

// errSimParse is a file U-Boot refuses whole ("Error parsing config file").
var errSimParse = errors.New("U-Boot: error parsing config file")

// simParser walks the file as get_token does.
type simParser struct {
	s    string // up to the first NUL: U-Boot treats the file as a C string
	i    int
	fsys bootloader.FS
	dir  string // the boot directory, "extlinux/"
	nest int
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// isSpace is C's isspace.
func isSpace(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }

// token returns the next token: "\n" for T_EOL, "" for T_EOF, else the
// word (lowercased when keyword is set) or the rest of the line.
func (p *simParser) token(literal bool) (string, bool) {
	for p.i < len(p.s) && isBlank(p.s[p.i]) {
		p.i++
	}
	if p.i < len(p.s) && p.s[p.i] == '#' {
		for p.i < len(p.s) && p.s[p.i] != '\n' {
			p.i++
		}
	}
	if p.i >= len(p.s) {
		return "", false
	}
	if p.s[p.i] == '\n' {
		p.i++
		return "\n", false
	}
	start := p.i
	if literal {
		for p.i < len(p.s) && p.s[p.i] != '\n' {
			p.i++
		}
		return p.s[start:p.i], true
	}
	for p.i < len(p.s) && !isSpace(p.s[p.i]) {
		p.i++
	}
	return strings.ToLower(p.s[start:p.i]), true
}

// literal is parse_sliteral: a missing string is an error of the whole file.
func (p *simParser) literal() (string, error) {
	v, ok := p.token(true)
	if !ok {
		return "", errSimParse
	}
	return v, nil
}

// integer is parse_integer: simple_strtol of the literal.
func (p *simParser) integer() (int, error) {
	v, err := p.literal()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range []byte(strings.TrimLeft(v, " ")) {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

func (p *simParser) eol() {
	for p.i < len(p.s) && p.s[p.i] != '\n' {
		p.i++
	}
}

// top is parse_pxefile_top.
func (p *simParser) top(m *simMenu) error {
	if p.nest > 16 {
		return errSimParse
	}
	for {
		t, word := p.token(false)
		switch {
		case t == "":
			return nil
		case t == "\n":
			continue
		case !word:
			continue
		}
		var err error
		switch t {
		case "menu":
			m.prompt = true
			k, _ := p.token(false)
			switch k {
			case "title", "background":
				_, err = p.literal()
			case "include":
				err = p.include(m)
			}
			p.eol()
		case "timeout":
			m.timeout, err = p.integer()
		case "label":
			err = p.label(m)
		case "default", "ontimeout":
			var v string
			if v, err = p.literal(); err == nil {
				m.defaultLabel = v
			}
		case "include":
			err = p.include(m)
		case "prompt":
			p.eol()
		default:
			p.eol() // "Ignoring unknown command"
		}
		if err != nil {
			return err
		}
	}
}

// include is handle_include: a file that cannot be read fails the whole parse.
func (p *simParser) include(m *simMenu) error {
	name, err := p.literal()
	if err != nil {
		return err
	}
	b, err := p.fsys.ReadFile(simPath(p.dir, name))
	if err != nil {
		return errSimParse
	}
	sub := &simParser{s: cString(b), fsys: p.fsys, dir: p.dir, nest: p.nest + 1}
	return sub.top(m)
}

// label is parse_label: a label ends at the first token it has no case
// for, which is put back for the top level.
func (p *simParser) label(m *simMenu) error {
	name, err := p.literal()
	if err != nil {
		return err
	}
	l := &simLabel{name: name}
	m.labels = append(m.labels, l)
	for {
		back := p.i
		t, _ := p.token(false)
		var err error
		switch t {
		case "menu":
			k, _ := p.token(false)
			switch k {
			case "default":
				if m.defaultLabel == "" {
					m.defaultLabel = l.name
				}
			case "label":
				_, _ = p.literal()
			}
			p.eol()
		case "kernel", "linux":
			var v string
			if v, err = p.literal(); err == nil {
				l.kernel, _, _ = strings.Cut(v, "#")
			}
		case "append":
			if l.appendLine, err = p.literal(); err == nil && l.initrd == "" {
				if _, rest, ok := strings.Cut(l.appendLine, "initrd="); ok {
					v, _, found := strings.Cut(rest, " ")
					if !found {
						return errors.New("U-Boot: initrd= at the end of APPEND: strchr returns NULL, undefined behaviour")
					}
					l.initrd = v
				}
			}
		case "initrd":
			if l.initrd == "" {
				l.initrd, err = p.literal()
			}
		case "fdt", "devicetree":
			if l.fdt == "" {
				l.fdt, err = p.literal()
			}
		case "fdtdir", "devicetreedir":
			if l.fdtdir == "" {
				l.fdtdir, err = p.literal()
			}
		case "fdtoverlays", "devicetree-overlay":
			_, err = p.literal()
		case "localboot":
			l.localboot = true
			_, err = p.integer()
		case "ipappend":
			_, err = p.integer()
		case "kaslrseed", "\n":
		default:
			p.i = back
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// cString is the file as U-Boot reads it: up to the first NUL.
func cString(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\x00")
	return s
}

// simPath is get_relfile's path: absolute paths as they are (sysboot
// allows them), others relative to the menu's directory.
func simPath(dir, p string) string {
	if strings.HasPrefix(p, "/") {
		return strings.TrimPrefix(p, "/")
	}
	return dir + p
}

// simBoot is distro boot on one partition: the first of
// /extlinux/extlinux.conf and /boot/extlinux/extlinux.conf that exists,
// parsed, then the DEFAULT label booted, or the others in order if it
// cannot be loaded. It returns an error when nothing boots.
func simBoot(fsys bootloader.FS, env simEnv) (simBooted, error) {
	for _, prefix := range []string{"", "boot/"} {
		b, err := fsys.ReadFile(prefix + "extlinux/extlinux.conf")
		if err != nil {
			continue
		}
		p := &simParser{s: cString(b), fsys: fsys, dir: prefix + "extlinux/", nest: 1}
		m := &simMenu{}
		if err := p.top(m); err != nil {
			return simBooted{}, err
		}
		return simMenuBoot(fsys, env, p.dir, m)
	}
	return simBooted{}, errors.New("U-Boot: no extlinux.conf: distro boot goes on to scripts, EFI and the next device")
}

// simMenuBoot is handle_pxe_menu.
func simMenuBoot(fsys bootloader.FS, env simEnv, dir string, m *simMenu) (simBooted, error) {
	if len(m.labels) == 0 {
		return simBooted{}, errors.New("U-Boot: no labels")
	}
	if m.prompt && (m.timeout+9)/10 == 0 {
		return simBooted{}, errors.New("U-Boot: a prompt without a timeout waits at the console forever")
	}
	var def *simLabel
	for _, l := range m.labels {
		if m.defaultLabel != "" && l.name == m.defaultLabel {
			def = l
			break
		}
	}
	attempted := map[*simLabel]bool{}
	var errs []string
	if def != nil {
		attempted[def] = true
		b, err := simLabelBoot(fsys, env, dir, def)
		if err == nil {
			return b, nil
		}
		errs = append(errs, err.Error())
	}
	for _, l := range m.labels {
		if attempted[l] {
			continue
		}
		b, err := simLabelBoot(fsys, env, dir, l)
		if err == nil {
			b.fellBack, b.missingDef = true, def == nil
			return b, nil
		}
		errs = append(errs, err.Error())
	}
	return simBooted{}, fmt.Errorf("U-Boot: no label boots: %s", strings.Join(errs, "; "))
}

// simLabelBoot is label_boot: initrd, kernel, bootargs and FDT, in that
// order; any failure skips the label.
func simLabelBoot(fsys bootloader.FS, env simEnv, dir string, l *simLabel) (simBooted, error) {
	b := simBooted{label: l.name}
	if l.localboot {
		return simBooted{}, fmt.Errorf("%s: localboot runs localcmd, which Cairn's boards do not set", l.name)
	}
	if l.kernel == "" {
		return simBooted{}, fmt.Errorf("%s: no kernel given", l.name)
	}
	read := func(what, p string) (string, error) {
		data, err := fsys.ReadFile(simPath(dir, p))
		if err != nil {
			return "", fmt.Errorf("skipping %s for failure retrieving %s %s", l.name, what, p)
		}
		return string(data), nil
	}
	var err error
	if l.initrd != "" {
		if b.initrd, err = read("initrd", l.initrd); err != nil {
			return simBooted{}, err
		}
	}
	if b.kernel, err = read("kernel", l.kernel); err != nil {
		return simBooted{}, err
	}
	if len(l.appendLine)+1 > env.cbsize {
		return simBooted{}, fmt.Errorf("%s: bootarg overflow %d+1 > %d", l.name, len(l.appendLine), env.cbsize)
	}
	if b.bootargs, err = simMacros(l.appendLine); err != nil {
		return simBooted{}, fmt.Errorf("%s: %v", l.name, err)
	}
	if env.fdtAddrR {
		switch {
		case l.fdt != "":
			if b.fdt, err = read("FDT", l.fdt); err != nil {
				return simBooted{}, err
			}
		case l.fdtdir != "":
			return simBooted{}, fmt.Errorf("%s: FDTDIR needs $fdtfile, not modelled", l.name)
		}
	}
	return b, nil
}

// simMacros is cli_simple_process_macros as far as Cairn's command lines
// can meet it: it refuses what it would change ($ variables, one level of
// \ and ' stripped), so that a label's APPEND is what the kernel gets.
func simMacros(s string) (string, error) {
	if i := strings.IndexAny(s, `$\'`); i >= 0 {
		return "", fmt.Errorf("APPEND has %q at %d, which U-Boot expands or strips", s[i], i)
	}
	return s, nil
}

// changedSectors counts the 512-byte sectors in which old and new differ.
func changedSectors(old, new []byte) int {
	n := 0
	for off := 0; off < max(len(old), len(new)); off += 512 {
		a, b := old[min(off, len(old)):min(off+512, len(old))], new[min(off, len(new)):min(off+512, len(new))]
		if string(a) != string(b) {
			n++
		}
	}
	return n
}

// simCmdline reads the slot and flags from a booted command line.
func simCmdline(bootargs string) (slot string, extlinux bool, version string) {
	for _, o := range strings.Fields(bootargs) {
		switch {
		case strings.HasPrefix(o, "cairn.slot="):
			slot = strings.TrimPrefix(o, "cairn.slot=")
		case o == "cairn.extlinux":
			extlinux = true
		case strings.HasPrefix(o, "cairn.test="):
			version = strings.TrimPrefix(o, "cairn.test=")
		}
	}
	return slot, extlinux, version
}
