"""``reconciler plan``: review a config-repo change (base -> head) before it merges.

Exit codes: 0 no change, 1 changes, 2 errors (an invalid head, a target that does not render,
a cluster that fails or cannot be reached with ``--live``). The plan is printed in every case,
so a CI job can post it even when it fails the check.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler.cli.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    ChartSources,
    chart_options,
    count_option,
    instance_option,
    kubeconfig_option,
    repo_argument,
    request_timeout_option,
)
from reconciler.cli.output import emit, output_option
from reconciler.review.json import to_data
from reconciler.review.markdown import DEFAULT_MAX_CHARS, to_markdown
from reconciler.review.plan import LiveOptions, plan
from reconciler.review.text import to_text


def register_review_commands(cli_group: click.Group) -> None:
    """Add ``plan`` to ``cli_group``."""
    cli_group.add_command(plan_command)


@click.command("plan")
@repo_argument
@click.option(
    "--base",
    required=True,
    help="Revision merged into (e.g. origin/main); diffed from its merge base with --head, as "
    "a pull request is. BASE...HEAD sets both.",
)
@click.option("--head", default="HEAD", help="Revision under review.")
@output_option("markdown", aliases={"text": "table"})
@click.option(
    "--live",
    is_flag=True,
    help="Also dry-run head against the live clusters (needs --kubeconfig): shows what would "
    "really change there, including drift the merge would overwrite.",
)
@kubeconfig_option
@instance_option
@request_timeout_option
@count_option(
    "--max-chars",
    DEFAULT_MAX_CHARS,
    "Markdown size cap, blocking problems included: what does not fit loses its diffs, "
    "then its details, or is counted instead of listed, with a visible note.",
    minimum=2000,
)
@chart_options
def plan_command(
    repo: Path,
    base: str,
    head: str,
    output: str,
    live: bool,
    kubeconfig: str | None,
    instance: str,
    request_timeout: float,
    max_chars: int,
    chart_sources: ChartSources,
) -> None:
    """Show what merging HEAD into BASE changes, offline from Git (no credentials).

    REPO is a local Git work tree (or a folder in one); revisions are exported from Git, so
    the checkout and its uncommitted changes are never read. For a folder, only that folder
    is exported: charts and kustomizations must not reach outside it.
    """
    if "..." in base:
        base, _, given_head = base.partition("...")
        if not base or not given_head:
            raise click.BadParameter(
                f"{base}...{given_head}: write BASE...HEAD", param_hint="--base"
            )
        head = given_head
    options = LiveOptions(kubeconfig, instance, request_timeout) if live else None
    review = plan(repo, base, head, live=options, charts=chart_sources.resolver())
    if output == "markdown":
        click.echo(to_markdown(review, max_chars), nl=False)
    else:
        emit(output, lambda: to_data(review), lambda: to_text(review))
    if review.has_errors:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_CHANGES if review.has_changes else EXIT_OK)
