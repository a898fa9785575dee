package chaos

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
)

// Binaries are the programs under test.
type Binaries struct {
	Receiver, Worker, NATSServer string
}

// Build builds cmd/receiver and cmd/worker of this module, and nats-server at the version go.mod
// pins, into dir. It must run inside the module (a test's working directory is).
func Build(ctx context.Context, dir string) (Binaries, error) {
	b := Binaries{
		Receiver:   filepath.Join(dir, "receiver"),
		Worker:     filepath.Join(dir, "worker"),
		NATSServer: filepath.Join(dir, "nats-server"),
	}
	builds := [][]string{
		{"build", "-o", dir + "/", "github.com/idpsync/idpsync/cmd/receiver", "github.com/idpsync/idpsync/cmd/worker"},
		{"build", "-o", b.NATSServer, "github.com/nats-io/nats-server/v2"},
	}
	errs := make([]error, len(builds))
	var wg sync.WaitGroup
	for i, args := range builds {
		wg.Go(func() {
			var out bytes.Buffer
			cmd := exec.CommandContext(ctx, "go", args...)
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Errorf("go %v: %w\n%s", args, err, out.String())
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return Binaries{}, err
		}
	}
	return b, nil
}
