// Package process names the running process in what it records: host and process id.
package process

import (
	"os"
	"strconv"
)

// Name returns "<host>/<pid>", or "unknown-host/<pid>" when the host name cannot be read.
func Name() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return host + "/" + strconv.Itoa(os.Getpid())
}
