"""`warden completion bash|zsh|fish`: shell completion generated from the argument parser itself,
so every command and option the parser knows completes, and nothing else."""

from __future__ import annotations

import argparse

__all__ = ["command_tree", "render_completion"]


def command_tree(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], list[str]]:
    """Map each command path (() for the top level) to the words that may follow it."""
    tree: dict[tuple[str, ...], list[str]] = {}
    words: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                words.append(name)
                tree.update(command_tree(sub, (*prefix, name)))
        else:
            words += [o for o in action.option_strings if o.startswith("--")]
            if action.choices and not action.option_strings:
                words += [str(c) for c in action.choices]
    tree[prefix] = sorted(set(words))
    return tree


def _bash(tree: dict[tuple[str, ...], list[str]]) -> str:
    cases = "\n".join(f'        "{" ".join(path)}") words="{" ".join(words)}" ;;' for path, words in tree.items())
    return f"""# bash completion for warden
_warden() {{
    local cur path="" word
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    for word in "${{COMP_WORDS[@]:1:COMP_CWORD-1}}"; do
        case "$word" in -*) continue ;; esac
        if [[ " $(_warden_words "$path") " == *" $word "* ]]; then path="${{path:+$path }}$word"; fi
    done
    COMPREPLY=( $(compgen -W "$(_warden_words "$path")" -- "$cur") )
}}
_warden_words() {{
    local words=""
    case "$1" in
{cases}
    esac
    echo "$words"
}}
complete -F _warden warden
"""


def _zsh(tree: dict[tuple[str, ...], list[str]]) -> str:
    return "#compdef warden\n# zsh completion for warden (uses bash's completion function)\n" \
           "autoload -U +X bashcompinit && bashcompinit\n" + _bash(tree)


def _fish(tree: dict[tuple[str, ...], list[str]]) -> str:
    lines = ["# fish completion for warden", "complete -c warden -f"]
    for path, words in tree.items():
        if path:
            condition = " and ".join(f"__fish_seen_subcommand_from {p}" for p in path)
        else:
            condition = "__fish_use_subcommand"
        for word in words:
            flag = f"-l {word[2:]}" if word.startswith("--") else f"-a {word}"
            lines.append(f"complete -c warden -n '{condition}' {flag}")
    return "\n".join(lines) + "\n"


def render_completion(parser: argparse.ArgumentParser, shell: str) -> str:
    tree = command_tree(parser)
    return {"bash": _bash, "zsh": _zsh, "fish": _fish}[shell](tree)
