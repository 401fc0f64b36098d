// Command catalog prints the lab's registry as data: every implementation,
// in process and remote, with its guarantee, and every backend.
//
//	go run ./cmd/catalog            the catalog as JSON (package catalog), which
//	                                `make bench` writes beside the raw results
//	                                for cmd/report
//	go run ./cmd/catalog -servers   one benchfmt configuration line per backend,
//	                                "server-<backend>: <installed version>", or
//	                                why it is missing
//	go run ./cmd/catalog -install   one line per backend: its install script and
//	                                the variable that skips it
//
// Scripts use it so that nothing outside the registry names a backend.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/contend-lab/contend/harness"
	"github.com/contend-lab/contend/remote"
)

func main() {
	servers := flag.Bool("servers", false, "print each backend's installed server version as a benchfmt configuration line")
	install := flag.Bool("install", false, "print each backend's install script and skip variable")
	flag.Parse()
	switch {
	case *servers:
		for _, b := range harness.Backends() {
			v, err := b.Version()
			switch {
			case errors.Is(err, remote.ErrNotInstalled):
				v = fmt.Sprintf("not installed (%s installs it)", b.Install)
			case err != nil:
				v = fmt.Sprintf("unusable: %v", err)
			}
			fmt.Printf("server-%s: %s\n", b.Name, v)
		}
	case *install:
		for _, b := range harness.Backends() {
			fmt.Printf("%s %s\n", b.Install, b.SkipEnv)
		}
	default:
		if err := harness.Catalog().Write(os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "catalog:", err)
			os.Exit(1)
		}
	}
}
