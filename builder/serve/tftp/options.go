package tftp

import (
	"strconv"
	"time"
)

// The options the server negotiates; any other is left out of the OACK,
// which RFC 2347 says means the server does not support it.
const (
	optBlockSize    = "blksize"    // RFC 2348
	optTimeout      = "timeout"    // RFC 2349
	optTransferSize = "tsize"      // RFC 2349
	optWindowSize   = "windowsize" // RFC 7440
)

// Limits of the option values from the RFCs.
const (
	defaultBlockSize = 512 // RFC 1350
	minBlockSize     = 8   // RFC 2348
	maxBlockSize     = 65464
	minTimeout       = 1 // seconds, RFC 2349
	maxTimeout       = 255
	maxWindowSize    = 65535 // RFC 7440
)

// limits are the server's side of the negotiation.
type limits struct {
	maxBlockSize  int
	maxWindowSize int
	timeout       time.Duration // when the client does not ask for one
}

// params are a transfer's parameters once the options are negotiated.
type params struct {
	blockSize  int
	windowSize int
	timeout    time.Duration
	// oack is what to acknowledge, or nil when no option is: the transfer
	// then starts with block 1, as in RFC 1350.
	oack []Option
	// tsize is whether the OACK tells the size, which makes an ERROR in
	// reply to it a size query rather than a refusal (see Transfer.SizeProbe).
	tsize bool
	// ignored are the options left out of the OACK, for the debug log.
	ignored []string
}

// negotiate decides a transfer's parameters from the client's options and
// the file's size. A value out of range is not an error: the option is
// left out of the OACK (and the default used) or, for blksize and
// windowsize above the server's cap, answered with the cap, which RFC
// 2348 and RFC 7440 allow and the client must accept.
func negotiate(opts []Option, size int64, lim limits) params {
	p := params{blockSize: defaultBlockSize, windowSize: 1, timeout: lim.timeout}
	ack := func(o Option, value int) {
		p.oack = append(p.oack, Option{Name: o.Name, Value: strconv.Itoa(value)})
	}
	for _, o := range opts {
		n, ok := parseNumber(o.Value)
		switch {
		case !ok:
			// Not a number: as if not sent.
		case o.Name == optBlockSize && n >= minBlockSize:
			p.blockSize = int(min(n, uint64(lim.maxBlockSize)))
			ack(o, p.blockSize)
			continue
		case o.Name == optTimeout && minTimeout <= n && n <= maxTimeout:
			// RFC 2349: the server must use exactly this value or not
			// acknowledge it.
			p.timeout = time.Duration(n) * time.Second
			ack(o, int(n))
			continue
		case o.Name == optTransferSize:
			// A client sends 0 in a read request; any number asks the size.
			p.tsize = true
			p.oack = append(p.oack, Option{Name: o.Name, Value: strconv.FormatInt(size, 10)})
			continue
		case o.Name == optWindowSize && n >= 1:
			p.windowSize = int(min(n, uint64(lim.maxWindowSize)))
			ack(o, p.windowSize)
			continue
		}
		p.ignored = append(p.ignored, o.Name+"="+o.Value)
	}
	return p
}

// parseNumber parses an option's value: decimal digits only (no sign, no
// space), at most 2^32-1, which is beyond every limit.
func parseNumber(s string) (uint64, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return n, err == nil
}
