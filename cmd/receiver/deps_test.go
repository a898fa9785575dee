package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The receiver is the exposed, stateless half of idpsync: it links no database driver, no job
// queue and no job dashboard, so none of their code (or their vulnerabilities) is on the public
// endpoint.
func TestReceiverLinksNoDatabaseOrQueue(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/riverqueue/", "riverqueue.com/", "github.com/jackc/pgx", "github.com/jackc/pgconn"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("the receiver links %s", dep)
			}
		}
	}
}
