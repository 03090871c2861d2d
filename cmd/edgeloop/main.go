// Command edgeloop is an edge gateway and CDN node in one binary.
package main

import (
	"fmt"
	"os"
)

var version = "dev"

func main() {
	fmt.Fprintln(os.Stderr, "edgeloop", version)
}
