// Command bcctl is grpcurl for gRPC connections that talk back: it calls
// Gitaly-style backchannel servers, answers the reverse calls they make,
// and mocks such servers. Run `bcctl --help` for the commands.
package main

import "os"

func main() {
	os.Exit(Main())
}
