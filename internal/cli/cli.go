// Package cli is the command line of idpsync's programs: a program runs one of its commands,
// the common flags (-config, -log-level) go before or after the command's name, and help works
// anywhere (-h, -help, "help", "help COMMAND") without a configuration and exits 0.
//
// A command loads only the configuration parts it needs, so "worker migrate" asks for a
// database, not for webhook secrets.
package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/idpsync/idpsync/internal/app"
	"github.com/idpsync/idpsync/internal/config"
)

// Program is a binary with commands.
type Program struct {
	// Name is the binary's name ("worker").
	Name string
	// Summary is one sentence on what the program does.
	Summary string
	// Default is the command run when none is named.
	Default string
	// Commands are the program's commands, in the order help lists them.
	Commands []Command
	// Environment describes the variables the program reads, for help.
	Environment string
}

// Command is one command of a program.
type Command struct {
	// Name is what the operator types ("migrate").
	Name string
	// Summary is one line for the program's help.
	Summary string
	// Usage is the command's own help, printed above its flags: what it does, examples.
	Usage string
	// Parts are the configuration parts the command needs; nil for a command that needs none.
	Parts []config.Part
	// Flags defines the command's flags on fs and returns the function that runs it once they are
	// parsed and the configuration is loaded.
	Flags func(fs *flag.FlagSet) func(ctx context.Context, e *Env) error
}

// Env is what a command runs with.
type Env struct {
	// Config holds the parts the command asked for, validated; nil when it asked for none.
	Config *config.Config
	// ConfigPath is the file Config was read from.
	ConfigPath string
	Logger     *slog.Logger
	Getenv     func(string) string
	// Stdout receives the command's results; Stderr its logs.
	Stdout, Stderr io.Writer
}

// common are the flags every command takes, before or after its name.
type common struct {
	config, logLevel string
}

func (c *common) define(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.config, "config", cmp.Or(c.config, getenv("IDPSYNC_CONFIG")), "configuration file (default $IDPSYNC_CONFIG)")
	fs.StringVar(&c.logLevel, "log-level", cmp.Or(c.logLevel, getenv("LOG_LEVEL")), "debug, info, warn or error (default $LOG_LEVEL or info)")
}

// Run parses args, loads the configuration the command needs and runs it. Help goes to stdout and
// returns nil; a usage error returns an error that says what to type instead.
func (p *Program) Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c common
	top := flag.NewFlagSet(p.Name, flag.ContinueOnError)
	top.SetOutput(io.Discard)
	c.define(top, getenv)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			p.help(stdout)
			return nil
		}
		return fmt.Errorf("%w; run '%s help'", err, p.Name)
	}
	rest := top.Args()
	name := p.Default
	if len(rest) > 0 {
		name, rest = rest[0], rest[1:]
	}
	if name == "help" {
		if len(rest) > 0 {
			if cmd := p.command(rest[0]); cmd != nil {
				p.commandHelp(stdout, cmd, getenv)
				return nil
			}
		}
		p.help(stdout)
		return nil
	}
	cmd := p.command(name)
	if cmd == nil {
		return fmt.Errorf("unknown command %q; the commands are %s (run '%s help')", name, p.names(), p.Name)
	}

	fs := flag.NewFlagSet(p.Name+" "+cmd.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.define(fs, getenv)
	runFunc := cmd.Flags(fs)
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			p.commandHelp(stdout, cmd, getenv)
			return nil
		}
		return fmt.Errorf("%s: %w; run '%s help %s'", cmd.Name, err, p.Name, cmd.Name)
	}
	if extra := fs.Args(); len(extra) > 0 {
		if slices.Contains(extra, "help") {
			p.commandHelp(stdout, cmd, getenv)
			return nil
		}
		return fmt.Errorf("%s takes no argument %q (flags start with -); run '%s help %s'", cmd.Name, extra[0], p.Name, cmd.Name)
	}

	logger, err := app.NewLogger(stderr, c.logLevel)
	if err != nil {
		return err
	}
	e := &Env{ConfigPath: c.config, Logger: logger, Getenv: getenv, Stdout: stdout, Stderr: stderr}
	if cmd.Parts != nil {
		if c.config == "" {
			return fmt.Errorf("no configuration: pass -config FILE or set IDPSYNC_CONFIG (see the README, Configuration)")
		}
		if e.Config, err = config.Load(c.config, getenv, cmd.Parts...); err != nil {
			return err
		}
	}
	return runFunc(ctx, e)
}

func (p *Program) command(name string) *Command {
	for i := range p.Commands {
		if p.Commands[i].Name == name {
			return &p.Commands[i]
		}
	}
	return nil
}

func (p *Program) names() string {
	var names []string
	for _, c := range p.Commands {
		names = append(names, c.Name)
	}
	return strings.Join(names, ", ")
}

func (p *Program) help(w io.Writer) {
	fmt.Fprintf(w, "%s: %s\n\nusage: %s [flags] [command] [command flags]   (flags may also follow the command)\n\ncommands:\n", p.Name, p.Summary, p.Name)
	for _, c := range p.Commands {
		def := ""
		if c.Name == p.Default {
			def = " (the default)"
		}
		fmt.Fprintf(w, "  %-12s %s%s\n", c.Name, c.Summary, def)
	}
	fmt.Fprintf(w, "\nflags of every command:\n  -config FILE       configuration file (default $IDPSYNC_CONFIG)\n  -log-level LEVEL   debug, info, warn or error (default $LOG_LEVEL or info)\n")
	fmt.Fprintf(w, "\n'%s help COMMAND' or '%s COMMAND -h' shows a command's flags.\n", p.Name, p.Name)
	if p.Environment != "" {
		fmt.Fprintf(w, "\nenvironment: %s\n", p.Environment)
	}
}

func (p *Program) commandHelp(w io.Writer, cmd *Command, getenv func(string) string) {
	fmt.Fprintf(w, "usage: %s %s [flags]\n\n%s\n", p.Name, cmd.Name, cmd.Summary)
	if cmd.Usage != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(cmd.Usage, "\n"))
	}
	fs := flag.NewFlagSet(cmd.Name, flag.ContinueOnError)
	var c common
	c.define(fs, getenv)
	cmd.Flags(fs)
	fmt.Fprintln(w, "\nflags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
}
