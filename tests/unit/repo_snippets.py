"""Small YAML building blocks for config repos written by tests."""

from __future__ import annotations

import textwrap

HEADER = "apiVersion: reconciler.io/v1alpha1\n"


def cluster(name: str, labels: str = "{}", vars: str = "{}", paused: bool = False) -> str:
    return (
        f"{HEADER}kind: Cluster\nmetadata:\n  name: {name}\n  labels: {labels}\n"
        f"spec:\n  vars: {vars}\n  paused: {str(paused).lower()}\n"
    )


def group(name: str, selector: str) -> str:
    return f"{HEADER}kind: ClusterGroup\nmetadata:\n  name: {name}\nspec:\n  selector: {selector}\n"


def app(name: str, spec: str) -> str:
    """An App document; ``spec`` is the YAML under ``spec:`` (any indentation)."""
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    return f"{HEADER}kind: App\nmetadata:\n  name: {name}\nspec:\n{body}\n"


def settings(spec: str = "allowEmpty: true") -> str:
    """``reconciler.yaml``; ``spec`` is the YAML under ``spec:`` (flow style or one line)."""
    return f"{HEADER}kind: Settings\nspec: {{{spec}}}\n"


def demo_chart_app(url: str, version: str) -> dict[str, str]:
    """A repo with one cluster (beijing-1) and the app ``web`` from the chart ``demo`` at
    ``version`` of the Helm repository at ``url``."""
    return {
        "clusters/beijing-1.yaml": cluster("beijing-1"),
        "apps/web/app.yaml": app(
            "web",
            f"""
            namespace: web
            source: {{helm: {{repo: "{url}", chart: demo, version: "{version}"}}}}
            placement: {{clusters: [beijing-1]}}
            """,
        ),
    }


def helm_app(helm: str) -> dict[str, str]:
    """A repo with one cluster (c1) and the app ``web`` whose ``source.helm`` is ``helm``
    (flow style)."""
    return {
        "clusters/c1.yaml": """
            apiVersion: reconciler.io/v1alpha1
            kind: Cluster
            metadata: {name: c1}
        """,
        "apps/web/app.yaml": f"""
            apiVersion: reconciler.io/v1alpha1
            kind: App
            metadata: {{name: web}}
            spec:
              source:
                helm: {helm}
              placement: {{clusters: [c1]}}
        """,
    }
