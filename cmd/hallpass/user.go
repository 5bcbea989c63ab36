package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/hallpass/hallpass/internal/database"
	"github.com/hallpass/hallpass/internal/password"
	"github.com/hallpass/hallpass/internal/user"
)

// userCommand runs `hallpass user SUBCOMMAND …`.
func userCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: user needs a subcommand: add, passwd, disable, enable or list", errUsage)
	}
	sub, rest := args[0], args[1:]
	admin := false
	var names []string
	for _, a := range rest {
		switch {
		case a == "--admin" && sub == "add":
			admin = true
		case strings.HasPrefix(a, "-"):
			return fmt.Errorf("%w: unknown flag %q for user %s", errUsage, a, sub)
		default:
			names = append(names, a)
		}
	}
	wantNames := 1
	if sub == "list" {
		wantNames = 0
	}
	if len(names) != wantNames {
		return fmt.Errorf("%w: user %s takes %d name(s), got %d", errUsage, sub, wantNames, len(names))
	}

	url := databaseURL(getenv)
	db, err := database.Open(ctx, url)
	if err != nil {
		return fmt.Errorf("open database %s: %w", database.DescribeURL(url), err)
	}
	defer db.Close()
	if err := database.Migrate(ctx, db); err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	users := user.NewSQLStore(db, time.Now)
	hasher := password.NewHasher(password.DefaultParams, 1)

	switch sub {
	case "add":
		return userAdd(ctx, users, hasher, names[0], admin, stdin, stdout, stderr)
	case "passwd":
		return userPasswd(ctx, users, hasher, names[0], stdin, stdout, stderr)
	case "disable", "enable":
		u, err := users.ByUsername(ctx, names[0])
		if err != nil {
			return fmt.Errorf("find user %q: %w", names[0], err)
		}
		if err := users.SetDisabled(ctx, u.ID, sub == "disable"); err != nil {
			return fmt.Errorf("%s user %q: %w", sub, u.Username, err)
		}
		fmt.Fprintf(stdout, "user %s %sd\n", u.Username, sub)
		return nil
	case "list":
		return userList(ctx, users, stdout)
	}
	return fmt.Errorf("%w: unknown user subcommand %q", errUsage, sub)
}

func userAdd(ctx context.Context, users user.Store, hasher *password.Hasher, name string, admin bool, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := user.ValidateUsername(name); err != nil {
		return err
	}
	pw, err := readNewPassword(stdin, stderr)
	if err != nil {
		return err
	}
	hash, err := hasher.Hash(ctx, pw)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	role := user.RoleUser
	if admin {
		role = user.RoleAdmin
	}
	u, err := users.Create(ctx, user.NewUser{Username: name, PasswordHash: hash, Role: role})
	if err != nil {
		return fmt.Errorf("create user %q: %w", name, err)
	}
	fmt.Fprintf(stdout, "created %s %s (id %d)\n", u.Role, u.Username, u.ID)
	return nil
}

func userPasswd(ctx context.Context, users user.Store, hasher *password.Hasher, name string, stdin io.Reader, stdout, stderr io.Writer) error {
	u, err := users.ByUsername(ctx, name)
	if err != nil {
		return fmt.Errorf("find user %q: %w", name, err)
	}
	pw, err := readNewPassword(stdin, stderr)
	if err != nil {
		return err
	}
	hash, err := hasher.Hash(ctx, pw)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	if err := users.SetPasswordHash(ctx, u.ID, hash); err != nil {
		return fmt.Errorf("set password of %q: %w", u.Username, err)
	}
	fmt.Fprintf(stdout, "password of %s changed\n", u.Username)
	return nil
}

func userList(ctx context.Context, users user.Store, stdout io.Writer) error {
	list, err := users.List(ctx, user.ListOptions{Limit: 10000})
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSERNAME\tROLE\tSTATUS\tCREATED")
	for _, u := range list {
		status := "active"
		if u.Disabled {
			status = "disabled"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", u.ID, u.Username, u.Role, status, u.CreatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// readNewPassword reads a password: from a terminal, twice and without echo;
// otherwise the first line of stdin, so scripts can pipe it in.
func readNewPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	var pw string
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		first, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(stderr, "Repeat password: ")
		second, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(first) != string(second) {
			return "", errors.New("the two passwords differ")
		}
		pw = string(first)
	} else {
		line, err := bufio.NewReader(io.LimitReader(stdin, password.MaxLength+2)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password from standard input: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	if err := password.Validate(pw); err != nil {
		return "", fmt.Errorf("password: %w (use %d to %d bytes)", err, password.MinLength, password.MaxLength)
	}
	return pw, nil
}
