"""Versioned schema of the workspace database: a list of forward migrations, applied in order, never edited.

To change the schema, append a new ``(version, statements)`` pair; never rewrite an applied one. Each migration
runs in one transaction together with its ``schema_version`` row, so a crash leaves the old or the new schema.
"""

from __future__ import annotations

_V1 = [
    """CREATE TABLE cases (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        event TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)""",
    # AUTOINCREMENT: an id is never reused after a delete, so finding ids "A<id>-..." stay unique forever.
    """CREATE TABLE analyses (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
        model_json TEXT NOT NULL,
        threshold REAL,
        options_json TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
        owner TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        finished_at TEXT)""",
    "CREATE INDEX analyses_case ON analyses(case_id)",
    """CREATE TABLE analysis_inputs (
        id INTEGER PRIMARY KEY,
        analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        pre_path TEXT,
        extra_json TEXT NOT NULL DEFAULT '{}',
        UNIQUE (analysis_id, name))""",
    """CREATE TABLE scenes (
        id INTEGER PRIMARY KEY,
        analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
        input_name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
        error TEXT,
        result_json TEXT NOT NULL,
        n_findings INTEGER NOT NULL,
        saved_at TEXT NOT NULL,
        UNIQUE (analysis_id, input_name),
        FOREIGN KEY (analysis_id, input_name) REFERENCES analysis_inputs(analysis_id, name))""",
    """CREATE TABLE findings (
        id TEXT PRIMARY KEY,
        analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
        scene_id INTEGER NOT NULL REFERENCES scenes(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        data_json TEXT NOT NULL,
        review_status TEXT NOT NULL DEFAULT 'unreviewed'
            CHECK (review_status IN ('unreviewed', 'confirmed', 'rejected')),
        grade TEXT NOT NULL,
        analyst TEXT NOT NULL DEFAULT '',
        notes TEXT NOT NULL DEFAULT '',
        det_method TEXT NOT NULL,
        reviewed_at TEXT)""",
    "CREATE INDEX findings_scene ON findings(scene_id, position)",
    "CREATE INDEX findings_analysis ON findings(analysis_id)",
    # The audit trail: one row per review call, with the values before and after.
    """CREATE TABLE reviews (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        finding_id TEXT NOT NULL REFERENCES findings(id) ON DELETE CASCADE,
        analyst TEXT NOT NULL,
        at TEXT NOT NULL,
        status_before TEXT, status_after TEXT,
        grade_before TEXT, grade_after TEXT,
        notes_before TEXT, notes_after TEXT)""",
    "CREATE INDEX reviews_finding ON reviews(finding_id, id)",
    """CREATE TABLE models (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL UNIQUE,
        size_bytes INTEGER NOT NULL,
        info_json TEXT NOT NULL,
        created_at TEXT NOT NULL)""",
    """CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        params_json TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
        progress REAL NOT NULL DEFAULT 0,
        message TEXT NOT NULL DEFAULT '',
        result_json TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        owner TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        finished_at TEXT)""",
    """CREATE TABLE job_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        data_json TEXT NOT NULL)""",
    "CREATE INDEX job_log_job ON job_log(job_id, id)",
]

# Review conflicts (issue 12): a review proposed against an older state of the finding, which its analyst chose
# not to apply after seeing the newer review ("kept theirs"), stays in the trail with that outcome.
_V2 = [
    "ALTER TABLE reviews ADD COLUMN outcome TEXT NOT NULL DEFAULT 'applied'",
]

# Accounts (issue 12): users with argon2 password hashes and a role, per-case membership, failed logins (for the
# rate limit, shared by every server process), and who made analyses, registered models, imported and exported
# cases.
_V3 = [
    """CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        role TEXT NOT NULL CHECK (role IN ('admin', 'analyst', 'viewer')),
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL)""",
    """CREATE TABLE case_members (
        case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        granted_at TEXT NOT NULL,
        PRIMARY KEY (case_id, user_id))""",
    """CREATE TABLE login_failures (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL COLLATE NOCASE,
        at REAL NOT NULL)""",
    "CREATE INDEX login_failures_name ON login_failures(name, at)",
    "ALTER TABLE analyses ADD COLUMN created_by TEXT",
    "ALTER TABLE models ADD COLUMN registered_by TEXT",
    """CREATE TABLE case_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id INTEGER,
        at TEXT NOT NULL,
        user TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '')""",
]

# Per-case settings (issue 16): what the analyst chose for a case that is not an analysis, e.g. the Map page's
# offline basemaps (``basemaps``: a JSON list of {"kind", "path", "name"}), as JSON values by key.
_V4 = [
    """CREATE TABLE case_settings (
        case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value_json TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        updated_by TEXT,
        PRIMARY KEY (case_id, key))""",
]

# Buildings (issue 13): per-building assessment of an analysis given footprints. ``data_json`` is the tool's
# record (statistics, score, automatic or calibrated grade); the analyst's review (status, grade set by hand, notes,
# calibration label) has columns of its own and an audit trail like the findings'; ``building_sets`` keeps the
# footprint files' messages, the counts and the fitted few-label calibration of each analysis.
_V5 = [
    """CREATE TABLE buildings (
        id TEXT PRIMARY KEY,
        analysis_id INTEGER NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        building_id TEXT NOT NULL,
        data_json TEXT NOT NULL,
        review_status TEXT NOT NULL DEFAULT 'unreviewed'
            CHECK (review_status IN ('unreviewed', 'confirmed', 'rejected')),
        analyst_grade TEXT,
        analyst TEXT NOT NULL DEFAULT '',
        notes TEXT NOT NULL DEFAULT '',
        label TEXT,
        reviewed_at TEXT,
        UNIQUE (analysis_id, building_id))""",
    "CREATE INDEX buildings_analysis ON buildings(analysis_id, position)",
    """CREATE TABLE building_reviews (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        building_ref TEXT NOT NULL REFERENCES buildings(id) ON DELETE CASCADE,
        analyst TEXT NOT NULL,
        at TEXT NOT NULL,
        status_before TEXT, status_after TEXT,
        grade_before TEXT, grade_after TEXT,
        notes_before TEXT, notes_after TEXT,
        label_before TEXT, label_after TEXT,
        outcome TEXT NOT NULL DEFAULT 'applied')""",
    "CREATE INDEX building_reviews_ref ON building_reviews(building_ref, id)",
    """CREATE TABLE building_sets (
        analysis_id INTEGER PRIMARY KEY REFERENCES analyses(id) ON DELETE CASCADE,
        summary_json TEXT NOT NULL,
        calibration_json TEXT,
        updated_at TEXT NOT NULL)""",
]

#: (version, statements) in order. The database records every applied version in ``schema_version``.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, _V1),
    (2, _V2),
    (3, _V3),
    (4, _V4),
    (5, _V5),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]
