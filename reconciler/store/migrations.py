"""The schema, as ordered migrations: index i takes version i to i+1 (append, never edit)."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: initial schema
    """
    CREATE TABLE revisions (
        sha      TEXT PRIMARY KEY,
        seen_at  TEXT NOT NULL,
        valid    INTEGER NOT NULL,
        error    TEXT
    );
    CREATE TABLE last_good (
        app  TEXT PRIMARY KEY,
        sha  TEXT NOT NULL
    );
    CREATE TABLE status (
        app             TEXT NOT NULL,
        cluster         TEXT NOT NULL,
        state           TEXT NOT NULL,
        message         TEXT NOT NULL,
        revision        TEXT,
        updated_at      TEXT NOT NULL,
        last_synced_at  TEXT,
        PRIMARY KEY (app, cluster)
    );
    CREATE TABLE drift (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        app           TEXT NOT NULL,
        cluster       TEXT NOT NULL,
        object        TEXT NOT NULL,
        kind          TEXT NOT NULL,
        paths         TEXT NOT NULL,
        fields        TEXT NOT NULL,
        revision      TEXT,
        detected_at   TEXT NOT NULL,
        corrected_at  TEXT
    );
    """,
    # 2: one open record per drift, enforced; fast listing newest first
    """
    CREATE UNIQUE INDEX drift_open_key ON drift (app, cluster, object, kind, paths)
        WHERE corrected_at IS NULL;
    CREATE INDEX drift_detected ON drift (detected_at DESC, id DESC);
    CREATE INDEX revisions_seen ON revisions (seen_at DESC);
    """,
    # 3: how fetching the config repo goes (one row: one daemon, one repo per state dir);
    # status by cluster (a pass reads its own cluster's rows); newest valid revision
    """
    CREATE TABLE source (
        id                    INTEGER PRIMARY KEY CHECK (id = 1),
        location              TEXT NOT NULL,
        branch                TEXT,
        last_success_at       TEXT,
        last_success_sha      TEXT,
        last_error            TEXT,
        last_error_at         TEXT,
        failing_since         TEXT,
        consecutive_failures  INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX status_cluster ON status (cluster, app);
    CREATE INDEX revisions_valid_seen ON revisions (valid, seen_at DESC);
    """,
    # 4: an open drift is identified by object and kind, not by its set of field paths (which
    # is updated in place); older duplicates of one open drift are closed when the newest was
    # detected. Pruning corrected records by age uses an index.
    """
    DROP INDEX drift_open_key;
    UPDATE drift SET corrected_at = (
        SELECT newest.detected_at FROM drift AS newest WHERE newest.id = (
            SELECT MAX(d.id) FROM drift AS d
            WHERE d.app = drift.app AND d.cluster = drift.cluster AND d.object = drift.object
                AND d.kind = drift.kind AND d.corrected_at IS NULL))
        WHERE corrected_at IS NULL AND id < (
            SELECT MAX(d.id) FROM drift AS d
            WHERE d.app = drift.app AND d.cluster = drift.cluster AND d.object = drift.object
                AND d.kind = drift.kind AND d.corrected_at IS NULL);
    CREATE UNIQUE INDEX drift_open_object ON drift (app, cluster, object, kind)
        WHERE corrected_at IS NULL;
    CREATE INDEX drift_corrected ON drift (corrected_at) WHERE corrected_at IS NOT NULL;
    """,
    # 5: per-target revisions (what each app x cluster should run, what it last applied and the
    # objects of that apply); revisions the prune guard holds, and their releases
    """
    CREATE TABLE targets (
        app         TEXT NOT NULL,
        cluster     TEXT NOT NULL,
        desired     TEXT,
        applied     TEXT,
        applied_at  TEXT,
        objects     TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (app, cluster)
    );
    CREATE INDEX targets_cluster ON targets (cluster, app);
    ALTER TABLE revisions ADD COLUMN held TEXT;
    CREATE TABLE releases (
        sha          TEXT PRIMARY KEY,
        released_by  TEXT NOT NULL,
        released_at  TEXT NOT NULL
    );
    """,
    # 6: progressive rollouts (one row per app and revision, the state as JSON), the operators'
    # commands waiting for the daemon, and pins (`reconciler rollback --to`)
    """
    CREATE TABLE rollouts (
        app         TEXT NOT NULL,
        revision    TEXT NOT NULL,
        phase       TEXT NOT NULL,
        data        TEXT NOT NULL,
        started_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (app, revision)
    );
    CREATE INDEX rollouts_started ON rollouts (app, started_at DESC);
    CREATE TABLE rollout_commands (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        app          TEXT NOT NULL,
        revision     TEXT NOT NULL,
        kind         TEXT NOT NULL,
        stage        TEXT,
        user         TEXT NOT NULL,
        at           TEXT NOT NULL,
        consumed_at  TEXT
    );
    CREATE INDEX rollout_commands_pending ON rollout_commands (app) WHERE consumed_at IS NULL;
    CREATE TABLE pins (
        app       TEXT NOT NULL,
        cluster   TEXT NOT NULL,
        revision  TEXT NOT NULL,
        user      TEXT NOT NULL,
        at        TEXT NOT NULL,
        PRIMARY KEY (app, cluster)
    );
    """,
    # 7: the exact chart (version, digest) each remote-chart app resolved to, per revision: a
    # restart or a fallback renders a revision with the same charts
    """
    CREATE TABLE revision_charts (
        sha      TEXT NOT NULL,
        app      TEXT NOT NULL,
        source   TEXT NOT NULL,
        version  TEXT NOT NULL,
        digest   TEXT NOT NULL,
        PRIMARY KEY (sha, app)
    );
    """,
    # 8: health per target (the worst object's, with every object judged, as JSON) and its
    # transitions
    """
    CREATE TABLE health (
        app          TEXT NOT NULL,
        cluster      TEXT NOT NULL,
        health       TEXT NOT NULL,
        detail       TEXT NOT NULL,
        revision     TEXT,
        assessed_at  TEXT NOT NULL,
        since        TEXT NOT NULL,
        PRIMARY KEY (app, cluster)
    );
    CREATE INDEX health_cluster ON health (cluster, app);
    CREATE TABLE health_history (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        app       TEXT NOT NULL,
        cluster   TEXT NOT NULL,
        health    TEXT NOT NULL,
        reason    TEXT NOT NULL,
        previous  TEXT,
        revision  TEXT,
        at        TEXT NOT NULL
    );
    CREATE INDEX health_history_at ON health_history (at DESC, id DESC);
    """,
    # 9: drift corrected by a user's one-shot heal (`reconciler apply --heal`): who and when
    """
    ALTER TABLE drift ADD COLUMN healed_by TEXT;
    ALTER TABLE drift ADD COLUMN healed_at TEXT;
    """,
    # 10: objects are named with their group whenever they have one (Deployment.apps/web/web,
    # as kubectl's deployment.apps/web): rename what drift records and applied targets keep
    """
    UPDATE drift SET object = 'Deployment.apps' || substr(object, 11)
        WHERE object GLOB 'Deployment/*';
    UPDATE drift SET object = 'StatefulSet.apps' || substr(object, 12)
        WHERE object GLOB 'StatefulSet/*';
    UPDATE drift SET object = 'DaemonSet.apps' || substr(object, 10)
        WHERE object GLOB 'DaemonSet/*';
    UPDATE drift SET object = 'ReplicaSet.apps' || substr(object, 11)
        WHERE object GLOB 'ReplicaSet/*';
    UPDATE drift SET object = 'ControllerRevision.apps' || substr(object, 19)
        WHERE object GLOB 'ControllerRevision/*';
    UPDATE drift SET object = 'Job.batch' || substr(object, 4) WHERE object GLOB 'Job/*';
    UPDATE drift SET object = 'CronJob.batch' || substr(object, 8) WHERE object GLOB 'CronJob/*';
    UPDATE drift SET object = 'HorizontalPodAutoscaler.autoscaling' || substr(object, 24)
        WHERE object GLOB 'HorizontalPodAutoscaler/*';
    UPDATE drift SET object = 'PodDisruptionBudget.policy' || substr(object, 20)
        WHERE object GLOB 'PodDisruptionBudget/*';
    UPDATE targets SET objects = replace(objects, '"Deployment/', '"Deployment.apps/');
    UPDATE targets SET objects = replace(objects, '"StatefulSet/', '"StatefulSet.apps/');
    UPDATE targets SET objects = replace(objects, '"DaemonSet/', '"DaemonSet.apps/');
    UPDATE targets SET objects = replace(objects, '"ReplicaSet/', '"ReplicaSet.apps/');
    UPDATE targets SET objects = replace(objects,
        '"ControllerRevision/', '"ControllerRevision.apps/');
    UPDATE targets SET objects = replace(objects, '"Job/', '"Job.batch/');
    UPDATE targets SET objects = replace(objects, '"CronJob/', '"CronJob.batch/');
    UPDATE targets SET objects = replace(objects,
        '"HorizontalPodAutoscaler/', '"HorizontalPodAutoscaler.autoscaling/');
    UPDATE targets SET objects = replace(objects,
        '"PodDisruptionBudget/', '"PodDisruptionBudget.policy/');
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def statements(script: str) -> list[str]:
    """Split a migration script into statements (our migrations hold no ``;`` in literals)."""
    return [s.strip() for s in script.split(";") if s.strip()]
