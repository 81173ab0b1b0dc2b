"""Who may call which RPC: one table, enforced at the door, deny by default.

Every RPC of every evalgrid service has exactly one row here (a test enumerates the generated
descriptors and fails on an RPC without a row or a row without an RPC). The interceptor
(`evalgrid.tls.IdentityInterceptor`, as `evalgrid.serving.start_server` builds it) refuses a
caller whose certificate role is not in the row, and refuses every call to a method that has no
row at all. The row's `binding` says which resource check the servicer makes on top of the role
(the request's site, workstation or session must be the caller's own); those checks need state
the door does not have, so they stay in the servicers, which name the binding they enforce.

To add an RPC: add its row below, in its service's block, in the same style.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from evalgrid.pki.identity import ROLES, Identity, Role
from evalgrid.tls import NoIdentityError, PermissionDeniedError, current_identity

__all__ = [
    "AUTHORIZATION",
    "BINDINGS",
    "PACKAGE",
    "Binding",
    "Rule",
    "authorize",
    "denial",
    "markdown_table",
    "rpc_name",
    "rule_for",
]

#: The protobuf package of the wire contract: full method names are "/evalgrid.v1.Svc/Method".
PACKAGE: Final = "evalgrid.v1"

Binding = Literal[
    "any", "own site", "host site", "seat at own site", "own workstation", "signed-in expert",
    "own seed share",
]

#: What each binding means, checked by the servicer after the door admitted the role.
BINDINGS: Final[Mapping[Binding, str]] = MappingProxyType({
    "any": "no resource check beyond the role",
    "own site": "acts for the site named in the certificate; a workstation or session named "
                "in the request must be at that site",
    "host site": "the project named must be hosted by the certificate's site",
    "seat at own site": "the session (and workstation) named must be a seat at the "
                        "certificate's site",
    "own workstation": "the workstation certificate's site is this agent's site and its id is "
                       "the request's workstation_id",
    "signed-in expert": "own workstation, and the booth holds an expert's sign-in: the call acts "
                        "on that expert's session only",
    "own seed share": "the supervisor's own share of a day's seed (commit, then reveal): the "
                      "only thing an auditor writes",
})


@dataclass(frozen=True)
class Rule:
    """One row: the roles admitted, the resource binding, whether the call can change state."""

    roles: tuple[Role, ...]
    binding: Binding
    writes: bool
    why: str

    def __post_init__(self) -> None:
        unknown = [r for r in self.roles if r not in ROLES]
        if unknown or not self.roles:
            raise ValueError(f"roles: unknown or empty {self.roles!r}")
        if self.writes and "auditor" in self.roles and self.binding != "own seed share":
            raise ValueError("roles: the auditor is read-only and may not call a writing RPC "
                             "(its own seed share aside)")
        if self.binding not in BINDINGS:
            raise ValueError(f"binding: unknown {self.binding!r}")


_OP: Final[tuple[Role, ...]] = ("operator",)
_READ: Final[tuple[Role, ...]] = ("operator", "auditor")
_SITE: Final[tuple[Role, ...]] = ("site",)
_WS: Final[tuple[Role, ...]] = ("workstation",)

#: The table: "Service.Method" -> Rule. Keys are short names; `rpc_name` maps full names here.
AUTHORIZATION: Final[Mapping[str, Rule]] = MappingProxyType({
    # --- SiteLink: site agents -> coordinator -------------------------------------------------
    "SiteLink.RegisterSite": Rule(_SITE, "own site", True, "declare the site's own inventory"),
    "SiteLink.Connect": Rule(_SITE, "own site", True, "status up, commands down"),
    "SiteLink.CheckIn": Rule(_SITE, "seat at own site", True, "desk check-in (audited)"),
    "SiteLink.SignIn": Rule(_SITE, "seat at own site", True, "relay of a booth sign-in"),
    "SiteLink.GetSheetForm": Rule(_SITE, "seat at own site", False, "relay for a booth"),
    "SiteLink.SubmitSheet": Rule(_SITE, "seat at own site", True, "relay for a booth"),
    "SiteLink.DeclareRecusal": Rule(_SITE, "seat at own site", True, "relay for a booth"),
    "SiteLink.AskClarification": Rule(_SITE, "seat at own site", True, "relay for a booth"),
    "SiteLink.Clarifications": Rule(_SITE, "seat at own site", False, "relay for a booth"),
    "SiteLink.Review": Rule(_SITE, "seat at own site", False, "relay for a booth"),
    "SiteLink.ReturnSheet": Rule(_SITE, "seat at own site", True, "relay for a booth"),
    "SiteLink.HostClarifications": Rule(_SITE, "host site", False, "relay to bidders"),
    "SiteLink.AnswerClarification": Rule(_SITE, "host site", True, "a bidder's answer"),
    "SiteLink.RegisterProject": Rule(_SITE, "host site", True, "register a hosted project"),
    "SiteLink.GetResult": Rule(_SITE, "host site", False, "the hosted project's report"),
    "SiteLink.IssueActivationCode": Rule(_SITE, "own site", True,
                                         "a one-time enrolment code for its own workstation"),
    "SiteLink.EnrolWorkstation": Rule(_SITE, "own site", True,
                                      "its workstation's CSR + code: a SITE/WS certificate"),
    # --- Operator: operator consoles, notifier gateway, auditors -> coordinator ---------------
    "Operator.Status": Rule(_READ, "any", False, "counts only"),
    "Operator.ListProjects": Rule(_READ, "any", False, "project states, no members"),
    "Operator.Draw": Rule(_OP, "any", True, "commit and draw"),
    "Operator.ReplyToNotice": Rule(_OP, "any", True, "an expert's answer, via the gateway"),
    "Operator.ProjectSeats": Rule(_READ, "any", False, "opaque seats; an audited read"),
    "Operator.ReplaceMember": Rule(_OP, "any", True, "leave or no-show redraw"),
    "Operator.StartEvaluation": Rule(_OP, "any", True, "audited unseal"),
    "Operator.CloseEvaluation": Rule(_OP, "any", True, "report and seed reveal"),
    "Operator.Watch": Rule(_READ, "any", False, "the audit feed"),
    "Operator.WatchGrid": Rule(_READ, "any", False, "the province at a glance"),
    "Operator.AdvanceClock": Rule(_OP, "any", True, "simulated clock only"),
    "Operator.PlanDay": Rule(_OP, "any", True, "the day plan: draw every project of a day"),
    "Operator.UnlockSignIn": Rule(_OP, "any", True, "lift a sign-in lockout (audited)"),
    "Operator.ListIncidents": Rule(_READ, "any", False, "site failures and their deadlines"),
    "Operator.DecideIncident": Rule(_OP, "any", True, "wait / postpone / re-evaluate (audited)"),
    "Operator.ListNotices": Rule(_OP, "any", False, "notices: opaque ids, venue, no code"),
    "Operator.ResendNotice": Rule(_OP, "any", True, "send a notice again (audited)"),
    "Operator.ProjectStory": Rule(_READ, "any", False,
                                  "a project's transitions: states, opaque seats"),
    "Operator.ServiceStats": Rule(_READ, "any", False,
                                  "per site and city service figures: counts, no names"),
    "Operator.CommitSeedShare": Rule(("auditor",), "own seed share", True,
                                     "the supervisor commits to its share of a day's seed"),
    "Operator.RevealSeedShare": Rule(("auditor",), "own seed share", True,
                                     "the supervisor reveals it after the coordinator commits"),
    # --- Booth: a workstation -> its site's agent ---------------------------------------------
    "Booth.Enrol": Rule(_WS, "own workstation", True, "the booth comes online"),
    "Booth.Heartbeat": Rule(_WS, "own workstation", True, "keeps the booth online"),
    "Booth.SignIn": Rule(_WS, "own workstation", True, "an expert signs in here"),
    "Booth.GetSheetForm": Rule(_WS, "signed-in expert", False, "the expert's sheet"),
    "Booth.SubmitSheet": Rule(_WS, "signed-in expert", True, "scores, signature"),
    "Booth.DeclareRecusal": Rule(_WS, "signed-in expert", True, "recusal"),
    "Booth.AskClarification": Rule(_WS, "signed-in expert", True, "a question to a bidder"),
    "Booth.Clarifications": Rule(_WS, "signed-in expert", False, "questions and answers"),
    "Booth.Review": Rule(_WS, "signed-in expert", False, "the leader's review"),
    "Booth.ReturnSheet": Rule(_WS, "signed-in expert", True, "the leader returns a sheet"),
    # --- Desk: the site's staff console -> its own agent --------------------------------------
    "Desk.CheckIn": Rule(_SITE, "own site", True, "check an expert in (audited)"),
    "Desk.Board": Rule(_SITE, "own site", False, "the booths of this site"),
    "Desk.WatchBoard": Rule(_SITE, "own site", False, "the booths, live"),
    "Desk.MarkWorkstation": Rule(_SITE, "own site", True, "fault / back in service"),
    "Desk.IssueActivationCode": Rule(_SITE, "own site", True, "enrolment code (audited)"),
    # --- Enrolment: a workstation's device-bound key -> its site's agent ----------------------
    # On the agent's enrolment port no client certificate exists yet (the one-time code is the
    # credential, checked by the coordinator); on the main port a workstation renews its key.
    "Enrolment.Activate": Rule(_WS, "own workstation", True, "CSR + one-time code"),
})


def rpc_name(method: str) -> str:
    """"/evalgrid.v1.Operator/Draw" -> "Operator.Draw" (a short name is returned as is)."""
    if not method.startswith("/"):
        return method
    service, _, name = method[1:].partition("/")
    return f"{service.removeprefix(PACKAGE + '.')}.{name}"


def rule_for(method: str) -> Rule | None:
    """The row of a full or short method name; None means refused (deny by default)."""
    return AUTHORIZATION.get(rpc_name(method))


def denial(identity: Identity, method: str) -> str | None:
    """Why `identity` may not call `method` at the door, or None when its role is admitted."""
    name = rpc_name(method)
    rule = AUTHORIZATION.get(name)
    if rule is None:
        return (f"role {identity.role!r} ({identity.subject}) may not call {name} "
                f"(no row in the authorization table: refused by default)")
    if identity.role not in rule.roles:
        return (f"role {identity.role!r} ({identity.subject}) may not call {name} "
                f"(requires {' or '.join(rule.roles)})")
    return None


def authorize(rpc: str) -> Identity:
    """The caller of the RPC being served, if its row admits the caller's role.

    Servicers call this (the door already did; this keeps a servicer safe wherever it is
    served) and then make the row's binding check. Raises ``PermissionDeniedError`` with the
    same message as the door, which the interceptor answers with PERMISSION_DENIED.
    """
    try:
        identity = current_identity()
    except NoIdentityError as exc:
        raise PermissionDeniedError(f"unauthenticated caller may not call {rpc_name(rpc)}",
                                    action=f"call {rpc_name(rpc)}", identity=None) from exc
    reason = denial(identity, rpc)
    if reason is not None:
        raise PermissionDeniedError(reason, action=f"call {rpc_name(rpc)}", identity=identity)
    return identity


README_BEGIN: Final = "<!-- authorization table: python -m evalgrid.authorization README.md -->"
README_END: Final = "<!-- end of authorization table -->"


def with_current_table(readme: str) -> str:
    """`readme` with the Markdown between its table markers replaced by the current table."""
    head, begin, rest = readme.partition(README_BEGIN)
    _, end, tail = rest.partition(README_END)
    if not begin or not end:
        raise ValueError(f"README: markers {README_BEGIN!r} ... {README_END!r} not found")
    return f"{head}{begin}\n{markdown_table()}{end}{tail}"


def markdown_table() -> str:
    """The table as Markdown, for the README (a test checks the README copy is current)."""
    lines = ["| RPC | roles | binding | writes |", "|---|---|---|---|"]
    for name, rule in AUTHORIZATION.items():
        lines.append(f"| `{name}` | {', '.join(rule.roles)} | {rule.binding} | "
                     f"{'yes' if rule.writes else 'no'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # refresh the README's copy of the table
    import sys
    from pathlib import Path

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    target.write_text(with_current_table(target.read_text(encoding="utf-8")), encoding="utf-8")
