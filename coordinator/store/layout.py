"""Every Redis key the coordinator writes, in one place: what it holds and who owns it.

A key named in two modules drifts (one renames, the other reads nothing), and a reader of the
store needs one page that says what is there. So each key or key template is defined here and
only here; modules import the name. ``{}`` slots are filled with ``str.format`` in the order the
comment gives. `tests/test_layering.py` refuses a key literal anywhere else in the coordinator.

Values that hold personal data are sealed (coordinator/domain/seal.py) before they get here.
"""

from __future__ import annotations

from typing import Final

# --- the province (coordinator/store/registry.py) ----------------------------------------------
CITIES: Final = "prov:cities"  # hash: city name -> city with aliases and districts
SITES: Final = "prov:sites"  # hash: site id -> site
EXPERTS: Final = "prov:experts"  # hash: expert id -> sealed expert
COMPANIES: Final = "prov:companies"  # hash: company id -> company
PROJECTS: Final = "prov:projects"  # hash: project id -> project
PROJECT_STATE: Final = "proj:state"  # hash: project id -> lifecycle state
PROJECT_STORY: Final = "proj:story:{}"  # project -> list: lifecycle transitions, oldest first
META: Final = "prov:meta"  # hash: the province file's metadata
EXPERT_IDS: Final = "prov:expert_ids"  # hash: HMAC-SHA256(ID number) -> expert id (the desk)

# --- the committee's day (coordinator/workflow.py) ---------------------------------------------
ALLOC: Final = "alloc:{}"  # project -> sealed allocation
DRAW: Final = "draw:{}"  # draw id -> hash: sealed draw archive, ...
SESSION: Final = "sess:{}"  # session id -> hash: the seat's session
SITE_SESSIONS: Final = "site:{}:sessions"  # site -> the sessions it should hold (resent)
SHEET: Final = "sheet:{}"  # session -> hash: the expert's score sheet
REDRAW_PENDING: Final = "redraw:pending"  # set of "project/session": a departure not yet redrawn
NOTICE_WITHDRAWN: Final = "notice:withdrawn"  # set: notice ids whose withdrawal went out
CLARIFICATIONS: Final = "clar:{}"  # project -> the committee's questions and answers
REQUEST: Final = "req:{}"  # caller scope + request id -> the reply (answer a resend once)
SIM_CLOCK: Final = "simclock:now"  # a simulated clock's time, so it survives a restart
FENCE: Final = "fence"  # counter: the fencing token of commands sent to sites
SITE_COMMANDS: Final = "cmds:{}"  # site -> hash: command id -> command not yet acknowledged

# --- draws (coordinator/drawing.py, draw_intents.py, day_plan.py, seed_shares.py) -------------
DRAW_SNAPSHOT: Final = "draw_snapshot:{}"  # snapshot digest -> sealed screen snapshot
INTENT: Final = "intent:{}"  # project -> a sealed draw intent, begun and not yet settled
INTENTS: Final = "intents"  # set: the projects with an open intent
PLAN_SEED: Final = "plan:{}"  # plan id -> hash: day, sealed seed; the seed once revealed
SEED_SHARE: Final = "seedshare:{}"  # day (ISO) -> hash: commitment, sealed secret, share

# --- faults (coordinator/faults.py) ------------------------------------------------------------
FAULT_INCIDENTS: Final = "faults:incidents"  # hash: incident id -> Incident JSON
FAULT_ADMITTED: Final = "faults:admitted:{}"  # project -> sessions already sent a seat pass
FAULT_MATERIALS: Final = "faults:materials:{}:{}"  # project, incident -> sealed materials
FAULT_SUPERSEDED: Final = "faults:alloc:{}:{}"  # project, incident -> the dissolved allocation

# --- people and sites (sign_in_guard.py, enrolment.py, store/conduct.py, revocation_feed.py)
SIGN_IN_LOCK: Final = "lock:{}"  # lockout scope -> ScopeState JSON (evalgrid.lockout)
ENROLMENT: Final = "enrol:{}"  # "site/workstation" -> the pending enrolment code
ENROLMENT_REFUSALS: Final = "enrol:refused:{}:{}"  # site, window -> refused enrolments
CONDUCT_BARS: Final = "conduct:bars"  # hash: version, sealed bars
CONDUCT_SANCTIONS: Final = "conduct:sanctions"  # hash: sanction id -> sealed Sanction
CONDUCT_FOLLOW: Final = "conduct:follow"  # hash: cursor = the last audit seq the bars followed
CONDUCT_EVENTS: Final = "conduct:events:{expert_id}"  # string: sealed {"expert_id", "events"}
CRL_AUDITED: Final = "crl:audited"  # set: serials (hex) already on the audit trail

# --- coordination (coordinator/leadership.py, coordinator/store/bookings.py) ------------------
LEADER: Final = "coordinator:leader"  # the leader's lease: "<node>|<token>", expires
FENCE_PREFIX: Final = "fence:"  # + name: a fencing counter (Fencing)
LEADER_FENCE: Final = "coordinator"  # the name of the leader's fencing counter
BOOKINGS_PREFIX: Final = "bk:"  # + resource key: sorted set of bookings (Bookings)
WORKSTATION_RESOURCE: Final = "ws:{}"  # a booking resource: a workstation
EXPERT_RESOURCE: Final = "ex:{}"  # a booking resource: an expert
AUDIT: Final = "audit"  # stream: the audit chain; AUDIT + ":head" the chain head (AuditLog)

# --- the store itself (coordinator/store/log_compaction.py) -----------------------------------
COMPACTION_HELD: Final = "store:compaction_held"  # string: the server's AOF rewrite setting a
# day plan set aside (given back at the plan's end, or at the next start after a crash)
