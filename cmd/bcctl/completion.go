package main

import (
	"github.com/spf13/cobra"
)

func newCompletionCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Print the completion script for bash, zsh or fish to standard output.
Load it in your shell's start-up file as the examples show.`,
		Example: `  # bash (needs the bash-completion package)
  source <(bcctl completion bash)

  # zsh
  bcctl completion zsh > "${fpath[1]}/_bcctl"

  # fish
  bcctl completion fish > ~/.config/fish/completions/bcctl.fish`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      exactArgs("the shell (bash, zsh or fish)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := f.IOStreams.Out
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			}
			return usageErrorf("completion: unknown shell %q: want bash, zsh or fish", args[0])
		},
	}
}
