package tftp

import (
	"reflect"
	"strings"
	"testing"
)

// packet builds a packet of opcode op and NUL-terminated strings.
func packet(op byte, fields ...string) []byte {
	b := []byte{0, op}
	for _, f := range fields {
		b = append(append(b, f...), 0)
	}
	return b
}

func TestParseRequest(t *testing.T) {
	manyOptions := []string{"f", "octet"}
	for i := range maxOptions + 1 {
		manyOptions = append(manyOptions, "x"+string(rune('a'+i)), "1")
	}
	for _, tt := range []struct {
		name string
		pkt  []byte
		want Request
		err  string // in the error; "" for none
	}{
		{"rrq", packet(1, "pxelinux.0", "octet"), Request{Op: OpRRQ, Filename: "pxelinux.0", Mode: "octet"}, ""},
		{"wrq", packet(2, "up", "octet"), Request{Op: OpWRQ, Filename: "up", Mode: "octet"}, ""},
		{"options", packet(1, "/efi/grubx64.efi", "octet", "tsize", "0", "blksize", "1468"),
			Request{Op: OpRRQ, Filename: "/efi/grubx64.efi", Mode: "octet", Options: []Option{{"tsize", "0"}, {"blksize", "1468"}}}, ""},
		{"mode and option names without case", packet(1, "f", "OCTET", "BlkSize", "1024"),
			Request{Op: OpRRQ, Filename: "f", Mode: "octet", Options: []Option{{"blksize", "1024"}}}, ""},
		{"netascii", packet(1, "f", "NetASCII"), Request{Op: OpRRQ, Filename: "f", Mode: "netascii"}, ""},
		{"empty option value", packet(1, "f", "octet", "multicast", ""),
			Request{Op: OpRRQ, Filename: "f", Mode: "octet", Options: []Option{{"multicast", ""}}}, ""},
		{"padding after the mode", append(packet(1, "f", "octet"), 0, 0, 0), Request{Op: OpRRQ, Filename: "f", Mode: "octet"}, ""},
		{"padding after an option", append(packet(1, "f", "octet", "tsize", "0"), 0),
			Request{Op: OpRRQ, Filename: "f", Mode: "octet", Options: []Option{{"tsize", "0"}}}, ""},
		{"value with any bytes", packet(1, "f", "octet", "x", "\xff\x01 "),
			Request{Op: OpRRQ, Filename: "f", Mode: "octet", Options: []Option{{"x", "\xff\x01 "}}}, ""},
		{"16 options", packet(1, manyOptions[:2+2*maxOptions]...), Request{}, ""},

		{"empty", nil, Request{}, "too short"},
		{"one byte", []byte{0}, Request{}, "too short"},
		{"opcode only", []byte{0, 1}, Request{}, "file name is not terminated"},
		{"data", packet(3, "f", "octet"), Request{}, "DATA is not a request"},
		{"ack", []byte{0, 4, 0, 1}, Request{}, "ACK is not a request"},
		{"oack", packet(6, "tsize", "1"), Request{}, "OACK is not a request"},
		{"unknown opcode", packet(0, "f", "octet"), Request{}, "opcode 0 is not a request"},
		{"big opcode", packet(0xff, "f", "octet"), Request{}, "opcode 255"},
		{"name not terminated", []byte("\x00\x01pxelinux.0"), Request{}, "file name is not terminated"},
		{"mode missing", packet(1, "f"), Request{}, "mode is not terminated"},
		{"mode not terminated", []byte("\x00\x01f\x00octet"), Request{}, "mode is not terminated"},
		{"empty name", packet(1, "", "octet"), Request{}, "file name is empty"},
		{"empty mode", packet(1, "f", ""), Request{}, `mode "" is not`},
		{"unknown mode", packet(1, "f", "binary"), Request{}, `mode "binary" is not`},
		{"mode with non-ASCII fold", packet(1, "f", "netaſcii"), Request{}, "is not octet"},
		{"option value missing", packet(1, "f", "octet", "blksize"), Request{}, `value of option "blksize" is not terminated`},
		{"option value not terminated", []byte("\x00\x01f\x00octet\x00blksize\x00512"), Request{}, `value of option "blksize"`},
		{"option name not terminated", []byte("\x00\x01f\x00octet\x00blksize"), Request{}, "option name is not terminated"},
		{"empty option name", packet(1, "f", "octet", "", "1", "tsize", "0"), Request{}, "option 1 has an empty name"},
		{"duplicate option", packet(1, "f", "octet", "blksize", "512", "BLKSIZE", "1468"), Request{}, `option "blksize" is given twice`},
		{"too many options", packet(1, manyOptions...), Request{}, "more than 16 options"},
		{"too long", packet(1, strings.Repeat("a", 600), "octet"), Request{}, "longer than the 512 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest(tt.pkt)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseRequest(%q) = %+v, %v; want an error with %q", tt.pkt, got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequest(%q): %v", tt.pkt, err)
			}
			if tt.want.Op != 0 && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseRequest(%q) = %+v, want %+v", tt.pkt, got, tt.want)
			}
		})
	}
}

func TestRequestOption(t *testing.T) {
	r := Request{Options: []Option{{"tsize", "0"}, {"blksize", "1468"}}}
	if v, ok := r.Option("blksize"); !ok || v != "1468" {
		t.Errorf("Option(blksize) = %q, %v", v, ok)
	}
	if v, ok := r.Option("timeout"); ok {
		t.Errorf("Option(timeout) = %q, %v; want none", v, ok)
	}
}

func TestParseReply(t *testing.T) {
	for _, tt := range []struct {
		name string
		pkt  []byte
		want reply
		err  string
	}{
		{"ack", []byte{0, 4, 0xff, 0xff}, reply{op: OpACK, block: 65535}, ""},
		{"ack padded", []byte{0, 4, 0, 1, 0, 0}, reply{op: OpACK, block: 1}, ""},
		{"error", []byte("\x00\x05\x00\x08User aborted\x00"), reply{op: OpERROR, code: CodeOptionRefused, msg: "User aborted"}, ""},
		{"error without NUL", []byte("\x00\x05\x00\x00no nul"), reply{op: OpERROR, msg: "no nul"}, ""},
		{"short", []byte{0, 4, 0}, reply{}, "too short"},
		{"data", []byte{0, 3, 0, 1, 'x'}, reply{}, "DATA during a read transfer"},
		{"request", packet(1, "f", "octet"), reply{}, "RRQ during a read transfer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseReply(tt.pkt)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseReply(%q) = %+v, %v; want an error with %q", tt.pkt, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseReply(%q) = %+v, %v; want %+v", tt.pkt, got, err, tt.want)
			}
		})
	}
}

func TestAppendPackets(t *testing.T) {
	for _, tt := range []struct {
		name string
		got  []byte
		want string
	}{
		{"data", appendData(nil, 0x0102, []byte("ab")), "\x00\x03\x01\x02ab"},
		{"empty data", appendData(nil, 7, nil), "\x00\x03\x00\x07"},
		{"oack", appendOACK(nil, []Option{{"tsize", "42"}, {"blksize", "1468"}}), "\x00\x06tsize\x0042\x00blksize\x001468\x00"},
		{"error", appendError(nil, CodeFileNotFound, "file not found"), "\x00\x05\x00\x01file not found\x00"},
		{"error with NUL", appendError(nil, CodeNotDefined, "a\x00b"), "\x00\x05\x00\x00a b\x00"},
		{"long error", appendError(nil, CodeNotDefined, strings.Repeat("x", 1000)), "\x00\x05\x00\x00" + strings.Repeat("x", maxErrorMessage) + "\x00"},
	} {
		if string(tt.got) != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

// FuzzParseRequest checks that ParseRequest never panics and that what
// it accepts is what the documentation promises and encodes back to a
// request that parses the same.
func FuzzParseRequest(f *testing.F) {
	for _, seed := range [][]byte{
		packet(1, "pxelinux.0", "octet"),
		packet(1, "/efi/boot/bootx64.efi", "octet", "tsize", "0"),
		packet(1, "/efi/boot/bootx64.efi", "octet", "blksize", "1468", "tsize", "0", "windowsize", "4", "timeout", "2"),
		packet(2, "upload", "netascii"),
		packet(1, "f", "OCTET", "BLKSIZE", "1024", "blksize", "512"),
		packet(1, "../../etc/passwd", "octet"),
		append(packet(1, "f", "octet", "tsize", "0"), 0, 0),
		packet(1, "f", "octet", "", "x"),
		[]byte("\x00\x01f\x00octet\x00blksize"),
		[]byte("\x00\x01"),
		[]byte("\x00\x05\x00\x08User aborted\x00"),
		{},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if r.Op != OpRRQ && r.Op != OpWRQ {
			t.Fatalf("accepted opcode %v", r.Op)
		}
		if r.Filename == "" || strings.Contains(r.Filename, "\x00") {
			t.Fatalf("accepted file name %q", r.Filename)
		}
		if r.Mode != "octet" && r.Mode != "netascii" && r.Mode != "mail" {
			t.Fatalf("accepted mode %q", r.Mode)
		}
		if len(r.Options) > maxOptions {
			t.Fatalf("accepted %d options", len(r.Options))
		}
		seen := map[string]bool{}
		for _, o := range r.Options {
			if o.Name == "" || o.Name != asciiLower(o.Name) || seen[o.Name] || strings.Contains(o.Name+o.Value, "\x00") {
				t.Fatalf("accepted option %q=%q in %+v", o.Name, o.Value, r)
			}
			seen[o.Name] = true
		}
		enc := appendRequest(nil, r)
		if len(enc) > len(b) || strings.Trim(string(b[len(enc):]), "\x00") != "" {
			t.Fatalf("re-encoded %q as %q, which is not it without padding", b, enc)
		}
		// What was sent, but for the case of names and any padding.
		if asciiLower(string(enc)) != asciiLower(string(b[:len(enc)])) {
			t.Fatalf("re-encoded %q as %q", b, enc)
		}
		again, err := ParseRequest(enc)
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("re-encoded %+v as %q, which parses as %+v, %v", r, enc, again, err)
		}
	})
}
