package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Opcode is the first field of every TFTP packet.
type Opcode uint16

// The opcodes of RFC 1350 and RFC 2347.
const (
	OpRRQ   Opcode = 1 // read request
	OpWRQ   Opcode = 2 // write request, which this server refuses
	OpDATA  Opcode = 3 // a block of the file
	OpACK   Opcode = 4 // the client received a block (or, block 0, the OACK)
	OpERROR Opcode = 5 // either side ends the transfer
	OpOACK  Opcode = 6 // the options the server accepted (RFC 2347)
)

// String returns the opcode's name as the RFCs write it.
func (o Opcode) String() string {
	switch o {
	case OpRRQ:
		return "RRQ"
	case OpWRQ:
		return "WRQ"
	case OpDATA:
		return "DATA"
	case OpACK:
		return "ACK"
	case OpERROR:
		return "ERROR"
	case OpOACK:
		return "OACK"
	}
	return "opcode " + strconv.Itoa(int(o))
}

// ErrorCode is the code an ERROR packet carries.
type ErrorCode uint16

// The error codes of RFC 1350 section 5 and RFC 2347.
const (
	CodeNotDefined       ErrorCode = 0 // see the message
	CodeFileNotFound     ErrorCode = 1
	CodeAccessViolation  ErrorCode = 2
	CodeDiskFull         ErrorCode = 3
	CodeIllegalOperation ErrorCode = 4
	CodeUnknownTID       ErrorCode = 5 // a packet from a port that is not part of the transfer
	CodeFileExists       ErrorCode = 6
	CodeNoSuchUser       ErrorCode = 7
	CodeOptionRefused    ErrorCode = 8 // the client refuses the OACK, or (EDK2) ends a size query
)

const (
	// maxRequestSize is the largest request RFC 2347 allows.
	maxRequestSize = 512
	// maxOptions bounds the options of a request. A boot client sends at
	// most four or five; more is not a client worth parsing.
	maxOptions = 16
	// maxErrorMessage bounds the text of an ERROR packet the server sends.
	maxErrorMessage = 200
)

// Request is a parsed read or write request.
type Request struct {
	// Op is OpRRQ or OpWRQ.
	Op Opcode
	// Filename is the file name as sent: not empty, without NUL, and not
	// yet checked against the served directory.
	Filename string
	// Mode is the transfer mode in lower case: "octet", "netascii" or
	// "mail".
	Mode string
	// Options are the RFC 2347 options in the order sent, each name in
	// lower case and present once.
	Options []Option
}

// Option is one RFC 2347 option of a request or an OACK.
type Option struct {
	// Name is the option's name (lower case in a parsed Request).
	Name string
	// Value is the option's value as sent, possibly empty.
	Value string
}

// Option returns the value of the option name (lower case) and whether
// the request has it.
func (r Request) Option(name string) (string, bool) {
	for _, o := range r.Options {
		if o.Name == name {
			return o.Value, true
		}
	}
	return "", false
}

// ParseRequest parses a TFTP read or write request:
//
//	opcode (2 bytes) | filename | 0 | mode | 0 | [name | 0 | value | 0]...
//
// It checks all of the packet, which comes from the network: the length
// (at most 512 bytes, RFC 2347), the opcode, that every string is
// NUL-terminated, a non-empty file name, a known mode, at most 16
// options, non-empty and distinct option names (compared without case).
// NUL bytes after the last option are tolerated, as some clients pad
// their requests. Whether the file name is acceptable is the server's
// business, not the parser's. ParseRequest never panics.
func ParseRequest(b []byte) (Request, error) {
	if len(b) > maxRequestSize {
		return Request{}, fmt.Errorf("request of %d bytes is longer than the %d bytes RFC 2347 allows", len(b), maxRequestSize)
	}
	if len(b) < 2 {
		return Request{}, fmt.Errorf("packet of %d bytes is too short for an opcode", len(b))
	}
	r := Request{Op: Opcode(binary.BigEndian.Uint16(b))}
	if r.Op != OpRRQ && r.Op != OpWRQ {
		return Request{}, fmt.Errorf("%s is not a request (only RRQ or WRQ start a transfer)", r.Op)
	}
	rest := b[2:]
	// field cuts the next NUL-terminated string off rest.
	field := func(what string) (string, error) {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return "", fmt.Errorf("%s is not terminated by a NUL byte", what)
		}
		s := string(rest[:i])
		rest = rest[i+1:]
		return s, nil
	}
	var err error
	if r.Filename, err = field("file name"); err != nil {
		return Request{}, err
	}
	if r.Filename == "" {
		return Request{}, errors.New("file name is empty")
	}
	mode, err := field("mode")
	if err != nil {
		return Request{}, err
	}
	switch r.Mode = asciiLower(mode); r.Mode {
	case "octet", "netascii", "mail":
	default:
		return Request{}, fmt.Errorf("mode %q is not octet, netascii or mail", mode)
	}
	for len(bytes.TrimLeft(rest, "\x00")) > 0 {
		if len(r.Options) == maxOptions {
			return Request{}, fmt.Errorf("more than %d options", maxOptions)
		}
		name, err := field("option name")
		if err != nil {
			return Request{}, err
		}
		if name == "" {
			return Request{}, fmt.Errorf("option %d has an empty name", len(r.Options)+1)
		}
		name = asciiLower(name)
		if _, dup := r.Option(name); dup {
			return Request{}, fmt.Errorf("option %q is given twice", name)
		}
		value, err := field(fmt.Sprintf("value of option %q", name))
		if err != nil {
			return Request{}, err
		}
		r.Options = append(r.Options, Option{Name: name, Value: value})
	}
	return r, nil
}

// asciiLower lower-cases ASCII letters only. Option names and modes are
// ASCII (RFC 2347); strings.ToLower would also fold other bytes, and
// replace invalid UTF-8, so the result would no longer be what was sent.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// appendRequest appends the wire form of r to b, the inverse of
// ParseRequest.
func appendRequest(b []byte, r Request) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(r.Op))
	b = appendString(b, r.Filename)
	b = appendString(b, r.Mode)
	return appendOptions(b, r.Options)
}

// appendData appends a DATA packet to b.
func appendData(b []byte, block uint16, data []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(OpDATA))
	b = binary.BigEndian.AppendUint16(b, block)
	return append(b, data...)
}

// appendOACK appends an OACK packet to b.
func appendOACK(b []byte, opts []Option) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(OpOACK))
	return appendOptions(b, opts)
}

// appendError appends an ERROR packet to b. The message is cut to a
// length any client's buffer holds and cleared of NUL bytes, which would
// end it early.
func appendError(b []byte, code ErrorCode, msg string) []byte {
	if len(msg) > maxErrorMessage {
		msg = msg[:maxErrorMessage]
	}
	msg = string(bytes.ReplaceAll([]byte(msg), []byte{0}, []byte{' '}))
	b = binary.BigEndian.AppendUint16(b, uint16(OpERROR))
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	return appendString(b, msg)
}

func appendOptions(b []byte, opts []Option) []byte {
	for _, o := range opts {
		b = appendString(b, o.Name)
		b = appendString(b, o.Value)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(append(b, s...), 0)
}

// reply is what a client sends during a read transfer: an ACK of a block
// (op OpACK) or an ERROR that ends the transfer (op OpERROR).
type reply struct {
	op    Opcode
	block uint16    // OpACK
	code  ErrorCode // OpERROR
	msg   string    // OpERROR
}

// parseReply parses a packet a client sent to a transfer's socket.
// Anything but an ACK or an ERROR is an error. A missing NUL after an
// ERROR's message is tolerated: the message is only logged.
func parseReply(b []byte) (reply, error) {
	if len(b) < 4 {
		return reply{}, fmt.Errorf("packet of %d bytes is too short for an ACK or ERROR", len(b))
	}
	r := reply{op: Opcode(binary.BigEndian.Uint16(b))}
	switch r.op {
	case OpACK:
		r.block = binary.BigEndian.Uint16(b[2:])
	case OpERROR:
		r.code = ErrorCode(binary.BigEndian.Uint16(b[2:]))
		msg := b[4:]
		if i := bytes.IndexByte(msg, 0); i >= 0 {
			msg = msg[:i]
		}
		r.msg = string(msg)
	default:
		return reply{}, fmt.Errorf("%s during a read transfer (want ACK or ERROR)", r.op)
	}
	return r, nil
}
