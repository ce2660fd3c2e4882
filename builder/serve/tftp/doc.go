// Package tftp is the read-only TFTP server of `cairn serve`: it hands a
// directory's files to machines that network-boot (PXE) with firmware
// that cannot fetch over HTTP — UEFI PXE (EDK2/OVMF), legacy PXE ROMs,
// iPXE's first stage.
//
//	root, err := os.OpenRoot(dir)
//	conn, err := net.ListenPacket("udp4", "192.0.2.1:69")
//	s := &tftp.Server{Root: root, OnTransfer: func(t tftp.Transfer) { fmt.Println(t) }}
//	err = s.Serve(ctx, conn) // until ctx is cancelled
//
// The protocol subset is what boot firmware uses, and no more:
//
//   - RFC 1350 read requests (RRQ) in octet mode. Write requests are
//     refused (access violation, "read-only server"), and so is netascii:
//     no boot client uses it, and translating line endings would corrupt
//     binaries for a client that asked for it by mistake.
//   - RFC 2347 option negotiation (OACK) with blksize (RFC 2348, capped at
//     Server.MaxBlockSize, by default 1468 so a block fits a 1500-byte
//     Ethernet frame without fragmentation), timeout and tsize (RFC 2349),
//     and windowsize (RFC 7440, capped at Server.MaxWindowSize). Other
//     options are ignored, as RFC 2347 says, and so are values out of
//     range: the client then uses the default, which it must accept.
//   - Block numbers roll over from 65535 to 0, as iPXE and EDK2 expect,
//     so files larger than 32 MiB work with 512-byte blocks.
//
// Everything that comes from the network is treated as hostile:
// ParseRequest is a pure function that checks the whole request; file
// names are confined to Server.Root, an os.Root, so that neither "..",
// an absolute path nor a symbolic link can reach a file outside it; the
// number of transfers at once is capped; failures are logged at most
// about once a second after a burst, with a count of the lines dropped.
// TFTP itself has no authentication and answers a small request with
// many larger packets, so serve it on the boot network only, never where
// the internet reaches it.
//
// Each transfer runs in its own goroutine on its own UDP socket (its
// transfer ID, RFC 1350 section 4), bound to the IP address of the
// listening socket. Bind that socket to the address the clients are told
// to use rather than to a wildcard address: on a wildcard socket the
// kernel picks the source address of the replies, and a client may drop
// replies from an address other than the one it sent its request to.
package tftp
