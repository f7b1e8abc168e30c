"""Command groups that several CLI areas share, such as `arvideo train <what> ...`.

argparse allows a sub-command name only once, so an area never calls `add_parser("train")`
itself; it asks for the group and adds its own sub-command to it, in any import order:

    def register(subparsers):
        train = command_group(subparsers, "train", help="train a model from a config file")
        p = train.add_parser("lumos", help="train a Lumos-1 model from CONFIG")
        p.add_argument("config", help="YAML or JSON config file")
        p.set_defaults(func=run)
"""

from __future__ import annotations

import argparse

_GROUP_ACTION = "_arvideo_group_action"  # attribute of a group's parser holding its sub-commands


def command_group(subparsers: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """The sub-commands of group `name` (`arvideo NAME ...`), created on first use."""
    parser = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help, description=help)
        action = parser.add_subparsers(dest=f"{name}_command", metavar="WHAT")
        setattr(parser, _GROUP_ACTION, action)
        parser.set_defaults(func=lambda _args, p=parser: p.print_help() or 2)
    action = getattr(parser, _GROUP_ACTION, None)
    if action is None:
        raise RuntimeError(
            f"`arvideo {name}` is a plain command, not a group; register it with command_group"
        )
    return action
