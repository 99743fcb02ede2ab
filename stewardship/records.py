"""Records of processing (UK GDPR Art. 30, the CNIL register), DPIA inputs and security measures.

Generated from the sources' data-access contracts, the config and the inventory
(:func:`stewardship.inventory.gather`): one record per source and purpose, under the ICO's
headings with the CNIL register's beside them. A source without a contract gets a record that says
so, in place of the values a contract would give.
"""

from __future__ import annotations

from typing import Any

from groundwork.settings import GroundworkConfig
from indexes.inventory import sslmode
from indexes.regions import uses_embedded

#: (key, ICO Art. 30 heading, CNIL register heading), in the order a record lists them.
HEADINGS: list[tuple[str, str, str]] = [
    ("activity", "Business function / processing activity", "Nom de l'activité de traitement"),
    ("controller_contact", "Data owner (contact within the controller)", "Responsable du traitement"),
    ("purpose", "Purpose of processing", "Finalité(s) du traitement"),
    ("lawful_basis", "Article 6 lawful basis", "Base légale"),
    ("special_categories", "Article 9 special category data", "Données sensibles"),
    ("data_subjects", "Categories of individuals", "Catégories de personnes concernées"),
    ("data_categories", "Categories of personal data", "Catégories de données collectées"),
    ("recipients", "Categories of recipients", "Catégories de destinataires"),
    ("agreement", "Link to contract or data-sharing agreement", "Contrat ou accord (référence)"),
    ("storage", "Location of personal data (residency)", "Lieu de stockage des données"),
    ("transfers", "Transfers to third countries, and safeguards", "Transferts hors UE et garanties"),
    ("retention", "Retention schedule", "Durées de conservation"),
    ("security", "Technical and organisational security measures", "Mesures de sécurité"),
]

NO_CONTRACT_TEXT = "no contract (acknowledged)"
MISSING_TEXT = "no contract: refused at ingest"
_STATUS = {"agreed": "contract agreed", "none": NO_CONTRACT_TEXT, "missing": MISSING_TEXT}


def security_measures(config: GroundworkConfig, scope: list[str] | None = None) -> list[dict[str, str]]:
    """The technical measures the config puts in place (names and settings, never a secret).

    ``scope`` names the sources the report covers (default: all); no other source is named.
    """
    db, api = config.database, config.api
    sources = [s for s in config.sources if scope is None or s.name in scope]
    measures = [
        {
            "measure": "Row-level security",
            "detail": "the API's role reads a document or chunk only when the caller's grants and regions "
            "match its access and residency tags (PostgreSQL policies); a reader role that is a superuser, "
            "has BYPASSRLS or owns the tables is refused",
        },
        {
            "measure": "Per-duty database roles",
            "detail": f"the API reads as {db.reader_role}, ingest writes as {db.writer_role} (its own region's "
            "rows only); only migrations, purges and this report connect as the owner",
        },
        {"measure": "Residency separation", "detail": _layout(config)},
        {"measure": "Encryption in transit to the database", "detail": _tls(config)},
        {
            "measure": "Redaction before storage",
            "detail": f"{', '.join(config.redaction.entities)} replaced by typed placeholders before anything "
            f"is embedded or stored (Presidio{' and the Rampart tagger' if config.redaction.tagger else ''}, "
            f"score threshold {config.redaction.score_threshold})",
        },
        {"measure": "API authentication", "detail": _auth(config)},
        {
            "measure": "Rate and size limits",
            "detail": f"{api.rate_limit_per_minute} requests a minute per caller (burst {api.rate_limit_burst}), "
            f"bodies up to {api.max_body_bytes} bytes",
        },
        {
            "measure": "Audit trail",
            "detail": "every search is recorded (caller, time, decision, the query redacted) in an append-only "
            "table; erasures leave append-only tombstones (who, when, which id, never content)",
        },
        {
            "measure": "Retention",
            "detail": "machine-enforced for "
            + (
                ", ".join(f"{s.name} ({s.retention_days} days)" for s in sources if s.retention_days)
                or "no source"
            )
            + " by the daily purge (03:00 UTC); other sources follow their contract's retention by hand; "
            + _records_retention(config),
        },
        {
            "measure": "Agents' actions",
            "detail": f"the action gate allows only configured actions ({', '.join(sorted(config.agents.actions)) or 'none'}); "
            "any other is refused",
        },
    ]
    if api.metrics.enabled:
        guarded = "a bearer token" if api.metrics.token_env else "no token (open)"
        measures.append({"measure": "Metrics endpoint", "detail": f"/metrics guarded by {guarded}"})
    return measures


def _records_retention(config: GroundworkConfig) -> str:
    """How long the audit trail and the agents' ledger are kept (``records``)."""
    records = config.records

    def kept(days: int | None) -> str:
        return f"{days} days, then deleted by the daily purge" if days else "until deleted by hand"

    return (
        f"the retrieval audit is kept {kept(records.audit_retention_days)}, the agents' ledger "
        f"{kept(records.ledger_retention_days)}; erasure tombstones are kept for good"
    )


def _layout(config: GroundworkConfig) -> str:
    if uses_embedded(config):
        return "one database per region on the embedded server (local socket)"
    if config.database.urls or config.database.reader_urls:
        return "one database per region"
    return "one schema per region in one database"


def _tls(config: GroundworkConfig) -> str:
    if uses_embedded(config):
        return "not applicable: the embedded server is reached over a local unix socket"
    db = config.database
    urls = [
        db.url,
        db.reader_url,
        db.writer_url,
        *db.urls.values(),
        *db.reader_urls.values(),
        *db.writer_urls.values(),
    ]
    modes = sorted(
        {sslmode(u.get_secret_value()) or "unset (libpq default: prefer)" for u in urls if u is not None}
    )
    return "sslmode " + ", ".join(modes)


def _auth(config: GroundworkConfig) -> str:
    parts = [f"API keys for {len(config.principals)} principal(s), stored as SHA-256 only"]
    if config.auth.jwt is not None:
        parts.append(
            f"JWTs ({', '.join(config.auth.jwt.algorithms)}; signature, issuer, audience, expiry checked)"
        )
    return "; ".join(parts)


def _recipients(source: dict[str, Any]) -> str:
    names = [
        f"{r['principal']} (regions {', '.join(r['regions'])}; {r['searches']} searches returned its chunks)"
        for r in source["recipients"]
    ]
    names += [
        f"{o['principal']} (no longer configured; {o['searches']} searches)" for o in source["other_readers"]
    ]
    return ", ".join(names) or "no configured principal may read it"


def _transfers(source: dict[str, Any]) -> str:
    cross = [r for r in source["recipients"] if r["transfer"]]
    if not cross:
        return f"none: every recipient reads only {', '.join(source['regions']) or 'no region'}"
    readers = "; ".join(
        f"{r['principal']} also reads {', '.join(sorted(set(r['regions']) - set(source['regions'])))}"
        for r in cross
    )
    return (
        f"possible: data stored in {', '.join(source['regions'])} is read by principals of other regions "
        f"({readers}); safeguards: to be stated by the controller"
    )


def records_of_processing(report: dict[str, Any], config: GroundworkConfig) -> list[dict[str, Any]]:
    """One record per source (its purpose), keyed as :data:`HEADINGS`, from contracts and inventory."""
    security = "; ".join(
        m["measure"] for m in security_measures(config, [s["name"] for s in report["sources"]])
    )
    out = []
    for s in report["sources"]:
        c = s["contract"]
        gap = NO_CONTRACT_TEXT if s["contract_status"] == "none" else MISSING_TEXT
        retention = c["retention"] if c else gap
        if s["retention_days"]:
            retention += f"; machine-enforced: documents unmodified for {s['retention_days']} days are erased"
        values = {
            "activity": f"retrieval for AI agents over source {s['name']} ({s['connector']})",
            "controller_contact": c["data_owner"] if c else gap,
            "purpose": c["purpose"] if c else gap,
            "lawful_basis": c["lawful_basis"].replace("_", " ") if c else gap,
            "special_categories": (", ".join(c["special_categories"]) or "none declared") if c else gap,
            "data_subjects": ", ".join(c["data_subjects"]) if c else gap,
            "data_categories": ", ".join(c["data_categories"]) if c else gap,
            "recipients": _recipients(s),
            "agreement": c["agreement"] if c else gap,
            "storage": f"{', '.join(s['regions'])} (committed: {', '.join(c['residency_commitment']) if c else gap})",
            "transfers": _transfers(s),
            "retention": retention,
            "security": security,
        }
        out.append({"source": s["name"], "contract_status": s["contract_status"], "fields": values})
    return out


def dpia_inputs(report: dict[str, Any], config: GroundworkConfig) -> list[dict[str, Any]]:
    """Per source, the facts a DPIA screening asks for, each with the evidence behind it."""
    out = []
    for s in report["sources"]:
        c = s["contract"]
        found = sum(s["redactions"].values())
        indicators = [
            ("Contract in place", s["contract_status"] == "agreed", _STATUS[s["contract_status"]]),
            (
                "Special category data declared",
                bool(c and c["special_categories"]),
                (", ".join(c["special_categories"]) or "none declared") if c else "unknown: no contract",
            ),
            (
                "Personal data found and redacted",
                found > 0,
                f"{found} values of {len(s['redactions'])} types",
            ),
            (
                "Read across regions (possible transfer)",
                any(r["transfer"] for r in s["recipients"]),
                _transfers(s),
            ),
            (
                "Used by AI agents that can act",
                bool(config.agents.actions),
                ", ".join(sorted(config.agents.actions)) or "no actions",
            ),
            (
                "Retention machine-enforced",
                bool(s["retention_days"]),
                f"{s['retention_days']} days" if s["retention_days"] else "contract text only",
            ),
        ]
        out.append(
            {
                "source": s["name"],
                "scale": {
                    "documents": s["documents"],
                    "chunks": s["chunks"],
                    "recipients": len(s["recipients"]),
                },
                "indicators": [{"question": q, "answer": a, "evidence": e} for q, a, e in indicators],
            }
        )
    return out
