/**
 * Where each shell loads completions from by itself: for a program installed under /usr/local
 * (npm install -g) bash-completion's and zsh's site directories, and fish's system-wide one
 * (Debian's fish does not look under /usr/local).
 */

export const COMPLETION_SHELLS = ["bash", "zsh", "fish"] as const;
export type CompletionShell = (typeof COMPLETION_SHELLS)[number];

export function completionPath(shell: CompletionShell, name: string): string {
  switch (shell) {
    case "bash":
      return `/usr/local/share/bash-completion/completions/${name}`;
    case "zsh":
      return `/usr/local/share/zsh/site-functions/_${name}`;
    case "fish":
      return `/etc/fish/completions/${name}.fish`;
  }
}
