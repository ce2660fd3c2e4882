package artifact

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

// piFiles are a Raspberry Pi's board files, as the builder gives them.
var piFiles = []BootFileData{
	{Name: "start4.elf", Data: []byte("start4")},
	{Name: "config.txt", Data: []byte("[pi4]\narm_boost=1\n")},
	{Name: "overlays/disable-bt.dtbo", Data: []byte("overlay")},
	{Name: "bcm2711-rpi-4-b.dtb", Data: []byte("dtb")},
	{Name: "empty.dat", Data: nil},
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestBootFilesRoundTrip: what WriteBootFiles writes, ReadBootFiles reads
// back against the listing it returned, sorted by name; the same files
// give the same bytes.
func TestBootFilesRoundTrip(t *testing.T) {
	var layer bytes.Buffer
	list, err := WriteBootFiles(&layer, piFiles)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range list {
		names = append(names, f.Name)
	}
	if got, want := strings.Join(names, " "), "bcm2711-rpi-4-b.dtb config.txt empty.dat overlays/disable-bt.dtbo start4.elf"; got != want {
		t.Errorf("listing %q, want %q", got, want)
	}
	data, err := ReadBootFiles(bytes.NewReader(layer.Bytes()), list)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range list {
		if sha(data[i]) != f.Digest || int64(len(data[i])) != f.Size {
			t.Errorf("%s read back as %q", f.Name, data[i])
		}
	}
	var again bytes.Buffer
	if _, err := WriteBootFiles(&again, []BootFileData{piFiles[3], piFiles[0], piFiles[4], piFiles[2], piFiles[1]}); err != nil || !bytes.Equal(again.Bytes(), layer.Bytes()) {
		t.Errorf("the same files in another order give other bytes (%v)", err)
	}
	d := Descriptor{MediaType: BootFilesMediaType, Digest: sha(layer.Bytes()), Size: int64(layer.Len())}
	if err := VerifyBootFiles(bytes.NewReader(layer.Bytes()), d, list); err != nil {
		t.Errorf("VerifyBootFiles: %v", err)
	}
	d.Digest = sha(nil)
	if err := VerifyBootFiles(bytes.NewReader(layer.Bytes()), d, list); err == nil || !strings.Contains(err.Error(), "the manifest says") {
		t.Errorf("VerifyBootFiles of another digest: %v", err)
	}
}

// TestBootFileNames: the names refused, each with an error that says why
// and what to do.
func TestBootFileNames(t *testing.T) {
	for _, tt := range []struct{ name, want string }{
		{"start4.elf", ""},
		{"overlays/vc4-kms-v3d-pi4.dtbo", ""},
		{"overlays/overlay_map.dtb", ""},
		{"", "no name"},
		{"/config.txt", "absolute path; name it relative"},
		{"../etc/passwd", "leaves the boot partition"},
		{"overlays/../../x", "leaves the boot partition"},
		{"overlays//x.dtbo", "empty or . element"},
		{"./x", "empty or . element"},
		{"overlays/", "empty or . element"},
		{"overlays\\x.dtbo", "backslash"},
		{".hidden", "dot-named"},
		{"overlays/.x.dtbo.tmp", "dot-named"},
		{"a b.dtb", "use letters, digits"},
		{"x:y", "use letters, digits"},
		{"caf\u00e9.dtb", "use letters, digits"},
		{"x\x00.dtb", "use letters, digits"},
		{strings.Repeat("a", 256), "more than 255"},
		{"cmdline.txt", "boot loader writes itself"},
		{"VMLINUZ", "boot loader writes itself"},
		{"autoboot.txt", "boot loader writes itself"},
		{"cairn-slot.txt", "boot loader writes itself"},
		{"initrd", "boot loader writes itself"},
	} {
		err := CheckBootFileName(tt.name)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("CheckBootFileName(%q) = %v; want %q", tt.name, err, tt.want)
		}
	}
}

// TestBootFilesListing: ParseConfig refuses listings the node must not
// act on.
func TestBootFilesListing(t *testing.T) {
	file := func(name string, size int64) BootFile { return BootFile{Name: name, Size: size, Digest: d1} }
	many := make([]BootFile, MaxBootFiles+1)
	for i := range many {
		many[i] = file("f"+strings.Repeat("x", i%200)+string(rune('a'+i%26))+".dtb", 1)
	}
	for _, tt := range []struct {
		name  string
		files []BootFile
		want  string
	}{
		{"none", nil, ""},
		{"two", []BootFile{file("start4.elf", 3), file("overlays/x.dtbo", 0)}, ""},
		{"duplicate", []BootFile{file("start4.elf", 3), file("start4.elf", 3)}, "one file on FAT"},
		{"duplicate in another case", []BootFile{file("start4.elf", 3), file("START4.ELF", 3)}, "one file on FAT"},
		{"absolute", []BootFile{file("/boot/x", 1)}, "absolute path"},
		{"dot-dot", []BootFile{file("../x", 1)}, "leaves the boot partition"},
		{"loader's own", []BootFile{file("cmdline.txt", 1)}, "writes itself"},
		{"bad digest", []BootFile{{Name: "x.dtb", Size: 1, Digest: "md5:00"}}, "not sha256"},
		{"negative size", []BootFile{file("x.dtb", -1)}, "negative"},
		{"too large", []BootFile{file("x.dtb", MaxBootFilesSize+1)}, "would pass"},
		{"too large together", []BootFile{file("x.dtb", MaxBootFilesSize), file("y.dtb", 1)}, "would pass"},
		{"too many", many, "more than the 256"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			c.BootFiles = tt.files
			b, _ := json.Marshal(c)
			_, err := ParseConfig(b)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("ParseConfig = %v; want %q", err, tt.want)
			}
		})
	}
	if _, err := WriteBootFiles(&bytes.Buffer{}, []BootFileData{{Name: "../x"}}); err == nil {
		t.Error("WriteBootFiles wrote a name the node refuses")
	}
}

// entry is one tar entry to forge.
type entry struct {
	hdr  tar.Header
	data string
}

func forge(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.data))
	}
	tw.Close()
	return b.Bytes()
}

func reg(name, data string) entry { return entry{tar.Header{Name: name, Mode: 0o644}, data} }

// TestReadBootFilesRefusals: a layer that is not exactly the listing is
// refused, saying where it differs.
func TestReadBootFilesRefusals(t *testing.T) {
	want := []BootFile{
		{Name: "a.dtb", Size: 1, Digest: sha([]byte("A"))},
		{Name: "overlays/b.dtbo", Size: 2, Digest: sha([]byte("BB"))},
	}
	good := []entry{reg("a.dtb", "A"), reg("overlays/b.dtbo", "BB")}
	for _, tt := range []struct {
		name  string
		layer []byte
		want  string
	}{
		{"exact", forge(t, good...), ""},
		{"missing one", forge(t, good[0]), "ends after 1 files"},
		{"one more", forge(t, append(good, reg("c.dtb", "C"))...), `holds an entry "c.dtb"`},
		{"another order", forge(t, good[1], good[0]), `entry 1 is "overlays/b.dtbo"`},
		{"absolute name", forge(t, reg("/a.dtb", "A"), good[1]), `entry 1 is "/a.dtb"`},
		{"dot-dot name", forge(t, reg("../a.dtb", "A"), good[1]), `entry 1 is "../a.dtb"`},
		{"twice", forge(t, good[0], good[0]), `entry 2 is "a.dtb"`},
		{"other size", forge(t, reg("a.dtb", "AA"), good[1]), "is 2 bytes, the config says 1"},
		{"other content", forge(t, reg("a.dtb", "Z"), good[1]), "does not hash"},
		{"symlink", forge(t, entry{tar.Header{Name: "a.dtb", Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow"}, ""}, good[1]), "not a regular file"},
		{"hard link", forge(t, entry{tar.Header{Name: "a.dtb", Typeflag: tar.TypeLink, Linkname: "x"}, ""}, good[1]), "not a regular file"},
		{"directory", forge(t, entry{tar.Header{Name: "a.dtb", Typeflag: tar.TypeDir}, ""}, good[1]), "not a regular file"},
		{"device", forge(t, entry{tar.Header{Name: "a.dtb", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 1}, ""}, good[1]), "not a regular file"},
		{"not a tar", []byte(strings.Repeat("garbage!", 200)), "not a tar"},
		{"empty", nil, "ends after 0 files"},
		{"cut short in a file", forge(t, good...)[:512], "reading a.dtb"},
		{"cut short after a file", forge(t, good...)[:700], "ends after 1 files"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadBootFiles(bytes.NewReader(tt.layer), want)
			if tt.want == "" {
				if err != nil || string(got[0]) != "A" || string(got[1]) != "BB" {
					t.Fatalf("ReadBootFiles = %q, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "rebuild the artifact") {
				t.Fatalf("ReadBootFiles = %v; want an error saying %q and the fix", err, tt.want)
			}
		})
	}
	if _, err := ReadBootFiles(bytes.NewReader(forge(t, good...)), []BootFile{{Name: "../x", Size: 1, Digest: d1}}); err == nil {
		t.Error("ReadBootFiles took a listing ParseConfig refuses")
	}
}

func TestMatch(t *testing.T) {
	listed := &Config{BootFiles: []BootFile{{Name: "a.dtb", Size: 10, Digest: d1}}}
	layer := &Descriptor{MediaType: BootFilesMediaType, Digest: d1, Size: 2048}
	for _, tt := range []struct {
		name string
		u    *Update
		c    *Config
		want string
	}{
		{"UEFI: neither", &Update{}, &Config{}, ""},
		{"Pi: both", &Update{BootFiles: layer}, listed, ""},
		{"listed, no layer", &Update{}, listed, "no " + BootFilesMediaType + " layer"},
		{"layer, none listed", &Update{BootFiles: layer}, &Config{}, "lists no board files"},
		{"layer too small", &Update{BootFiles: &Descriptor{Size: 9}}, listed, "less than the 10 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Match(tt.u, tt.c)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Match = %v; want %q", err, tt.want)
			}
		})
	}
	b := manifest(SlotMediaType, KernelMediaType, InitrdMediaType, BootFilesMediaType, BootFilesMediaType)
	if _, err := ParseUpdate(b); err == nil || !strings.Contains(err.Error(), "two") {
		t.Errorf("two board files layers: %v", err)
	}
	var m Manifest
	json.Unmarshal(manifest(SlotMediaType, KernelMediaType, InitrdMediaType, BootFilesMediaType), &m)
	if u, err := ParseUpdate(manifest(SlotMediaType, KernelMediaType, InitrdMediaType, BootFilesMediaType)); err != nil || u.BootFiles == nil || u.BootFiles.Digest != d1 {
		t.Errorf("board files layer not picked out: %+v, %v", u, err)
	}
	m.Layers[3].Size = MaxBootFilesLayer + 1
	big, _ := json.Marshal(m)
	if _, err := ParseUpdate(big); err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Errorf("a board files layer too large: %v", err)
	}
}

// FuzzReadBootFiles: no layer makes ReadBootFiles panic or return what
// the listing does not say.
func FuzzReadBootFiles(f *testing.F) {
	var layer bytes.Buffer
	list, err := WriteBootFiles(&layer, piFiles)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(layer.Bytes())
	f.Add(layer.Bytes()[:600])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		data, err := ReadBootFiles(bytes.NewReader(b), list)
		if err != nil {
			return
		}
		for i, w := range list {
			if sha(data[i]) != w.Digest {
				t.Fatalf("%s read as %q", w.Name, data[i])
			}
		}
	})
}
