"""What a server serves, read from discovery documents shaped as a kube-apiserver sends them."""

from __future__ import annotations

from reconciler.kube.served import Resource, aggregated_resources, resources_of, served_names

AGGREGATED_APIS = {
    "kind": "APIGroupDiscoveryList",
    "items": [
        {
            "metadata": {"name": "apps"},
            "versions": [
                {
                    "version": "v1",
                    "resources": [
                        {
                            "resource": "deployments",
                            "responseKind": {
                                "group": "apps",
                                "version": "v1",
                                "kind": "Deployment",
                            },
                            "scope": "Namespaced",
                            "verbs": ["get", "list", "watch"],
                        },
                        {
                            "resource": "controllerrevisions",
                            "responseKind": {"kind": "ControllerRevision"},
                            "scope": "Namespaced",
                            "verbs": ["list"],
                        },
                    ],
                }
            ],
        }
    ],
}
AGGREGATED_API = {
    "kind": "APIGroupDiscoveryList",
    "items": [
        {
            "metadata": {},
            "versions": [
                {
                    "version": "v1",
                    "resources": [
                        {
                            "resource": "namespaces",
                            "responseKind": {"kind": "Namespace"},
                            "scope": "Cluster",
                            "verbs": ["list"],
                        }
                    ],
                }
            ],
        }
    ],
}


def test_an_aggregated_answer_names_group_versions_and_kinds() -> None:
    assert served_names(AGGREGATED_APIS) == {
        "apps/v1",
        "apps/v1/Deployment",
        "apps/v1/ControllerRevision",
    }
    assert served_names(AGGREGATED_API) == {"v1", "v1/Namespace"}


def test_a_plain_answer_names_versions_only() -> None:
    assert served_names({"kind": "APIVersions", "versions": ["v1"]}) == {"v1"}
    groups = {
        "kind": "APIGroupList",
        "groups": [{"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}]}],
    }
    assert served_names(groups) == {"apps/v1"}
    assert aggregated_resources(groups) is None


def test_resources_are_read_as_plain_discovery_has_them() -> None:
    found = aggregated_resources(AGGREGATED_API)
    assert found == [
        (
            "",
            "v1",
            {"kind": "Namespace", "name": "namespaces", "namespaced": False, "verbs": ["list"]},
        )
    ]


def test_a_group_versions_resources_skip_subresources() -> None:
    listing = {
        "resources": [
            {"kind": "Deployment", "name": "deployments", "namespaced": True},
            {"kind": "Scale", "name": "deployments/scale", "namespaced": True},
        ]
    }
    assert resources_of("apps", "v1", listing) == {
        "Deployment": Resource("apps", "v1", "Deployment", "deployments", True)
    }
