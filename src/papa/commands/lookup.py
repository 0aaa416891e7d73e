"""From the command table to a parser, abbreviations and ``help`` (pure).

:class:`CommandTable` takes the rows (:class:`~papa.commands.table.Command`)
and derives everything a request needs: the tree of words, every accepted
abbreviation, and the texts of ``help``.

Lookup follows papa 1.0.6: words are lower-cased; a word either matches
exactly or resolves to the first command, in alphabetical order, that starts
with it (``l p`` is ``list processes``, ``s`` is ``set``); ``exit-if-idle``
cannot be abbreviated; the error texts are papa's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

from ..errors import Error
from .table import Command

# A group of words ("list") maps each next word to a command or a subgroup.
Tree: TypeAlias = "dict[str, Command | Tree]"

# Spellings already resolved, as typed ("l", ("l", "v")): most requests are
# answered from here.  Bounded, since clients choose the spelling.
RESOLVED_LIMIT = 4096


class CommandTable:
    """The commands, with the word tree and abbreviations derived from them."""

    def __init__(self, commands: Iterable[Command]):
        self.commands = tuple(commands)
        names = [command.name for command in self.commands]
        if len(set(names)) != len(names):
            raise ValueError(f"a command is registered twice: {sorted(names)}")
        self.tree = _build_tree(self.commands)
        self._abbreviations: dict[int, dict[str, str]] = {}
        _build_abbreviations(self.tree, self._abbreviations)
        self._resolved: dict[str | tuple[str, ...], Command] = {}

    def find(self, words: list[str]) -> tuple[Command, list[str]]:
        """The command a request names, and its arguments (the hot path)."""
        resolved = self._resolved
        if words:
            hit = resolved.get(words[0])
            if hit is not None:
                return hit, words[1:]
            if len(words) > 1:
                hit = resolved.get((words[0], words[1]))
                if hit is not None:
                    return hit, words[2:]
        node, rest = self._walk(words, allow_partial=False)
        assert isinstance(node, Command)  # a group is an error without partial
        return node, rest

    def lookup(
        self, words: list[str], allow_partial: bool = False
    ) -> tuple[Command | Tree, list[str]]:
        """Resolve the leading words of a request to a command.

        Returns the command (or, with ``allow_partial``, a group such as
        ``list``) and the remaining words.  Raises :class:`Error` with papa's
        texts for unknown or incomplete commands.
        """
        if allow_partial:
            return self._walk(words, allow_partial=True)
        return self.find(words)

    def _walk(
        self, words: list[str], allow_partial: bool
    ) -> tuple[Command | Tree, list[str]]:
        node: Command | Tree = self.tree
        group: str | None = None
        index = 0
        while type(node) is dict:
            if index == len(words):
                if allow_partial and group is not None:
                    return node, []
                raise Error(f'"{group}" must be followed by one of: {_word_list(node)}')
            word = words[index].lower()
            index += 1
            key = self._resolve(node, word, group)
            node = node[key]
            group = key if group is None else f"{group} {key}"
        assert isinstance(node, Command)
        if not allow_partial and len(self._resolved) < RESOLVED_LIMIT:
            self._resolved[words[0] if index == 1 else tuple(words[:index])] = node
        return node, words[index:]

    def _resolve(self, node: Tree, word: str, group: str | None) -> str:
        key = self._abbreviations[id(node)].get(word)
        if key is not None:
            entry = node[key]
            if key != word and isinstance(entry, Command) and not entry.abbreviable:
                raise Error(f'You cannot abbreviate "{key}"')
            return key
        if group is not None:
            raise Error(
                f'Bad "{group}" command. The following word must be one of: '
                + _word_list(node)
            )
        raise Error(f'Unknown command "{word}"')

    def general_help(self) -> str:
        """The reply to a bare ``help``, generated from the table."""
        width = max(len(command.name) for command in self.commands)
        lines = ["Possible commands are:"]
        for command in self.commands:
            lines.append(f"    {command.name.ljust(width)} - {command.summary}")
        lines.append("")
        lines.append(
            "All commands may be abbreviated: type at least one character of each"
        )
        lines.append('word ("l p" is "list processes"), except exit-if-idle.')
        lines.append("")
        lines.append(
            "After a 'watch' command, enter '-' and a return to receive more output."
        )
        return "\n".join(lines)

    def topic_help(self, words: list[str]) -> str:
        """The reply to ``help WORD…``; unknown topics are not an error (papa)."""
        try:
            node, _ = self.lookup(words, allow_partial=True)
        except Error as exc:
            return f"{exc}\n"
        if isinstance(node, Command):
            usage = f"Usage: {node.name} {node.arguments}".rstrip()
            return f"{usage}\n\n{node.help}"
        members = sorted(_commands_in(node), key=lambda command: command.name)
        lines = [f"{command.name} - {command.summary}" for command in members]
        lines.append("")
        lines.append(f'Type "help {members[0].words[0]} <word>" for details.')
        return "\n".join(lines)


def _build_tree(commands: Iterable[Command]) -> Tree:
    tree: Tree = {}
    for command in commands:
        node = tree
        for word in command.words[:-1]:
            child = node.setdefault(word, {})
            assert isinstance(child, dict), f"{command.name} extends a command"
            node = child
        node[command.words[-1]] = command
    return tree


def _build_abbreviations(node: Tree, table: dict[int, dict[str, str]]) -> None:
    """Map every prefix of every word to what it resolves to (or an error)."""
    resolved: dict[str, str] = {}
    # Alphabetical first wins, and papa's words win over extensions.
    for key in sorted(
        node, key=lambda key: (_is_extension(node[key]), key), reverse=True
    ):
        for length in range(1, len(key) + 1):
            resolved[key[:length]] = key
    for key in node:
        resolved[key] = key  # an exact word always wins
    table[id(node)] = resolved
    for entry in node.values():
        if isinstance(entry, dict):
            _build_abbreviations(entry, table)


def _is_extension(entry: Command | Tree) -> bool:
    if isinstance(entry, Command):
        return entry.extension
    return all(_is_extension(child) for child in entry.values())


def _commands_in(node: Tree) -> list[Command]:
    return [entry for entry in node.values() if isinstance(entry, Command)]


def _word_list(node: Tree) -> str:
    """The words of a group for an error text: papa's own where it has some,
    so papa's error texts stay byte for byte the same (``help`` lists all)."""
    papa_words = [key for key in node if not _is_extension(node[key])]
    return ", ".join(sorted(papa_words or node))
