"""Alert rules made through the API, rule states and their acknowledgements, the notification outbox (each
notification sent, or marked silenced) and its delivery claims.

Claims are rows with a unique key: the one process whose insert lands evaluates a minute or sends a
notification, whatever the number of processes sharing the database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from yolowatch.alerts import Acknowledgement
from yolowatch.records import AlertState, Notification
from yolowatch.store.base import StoreBase
from yolowatch.store.rows import insert_sql

STATE_COLUMNS = ("rule", "deployment", "state", "active_since", "last_true", "value")
UPSERT_STATE = insert_sql("alert_state", STATE_COLUMNS, ("rule", "deployment"))
NOTIFICATION_COLUMNS = (
    "rule", "deployment", "status", "starts_at", "ends_at", "value", "severity", "runbook", "created_s", "class_name",
    "silenced_by",
)  # fmt: skip
INSERT_NOTIFICATION = insert_sql("alert_notifications", NOTIFICATION_COLUMNS)
# A claim of a notification that is not silenced (a silence marking it meanwhile wins: it is sent by every sink
# or by none).
CLAIM_DELIVERY = (
    "INSERT INTO alert_deliveries (notification, sink, delivered_s) SELECT ?, ?, ? WHERE EXISTS "
    "(SELECT 1 FROM alert_notifications WHERE id = ? AND silenced_by IS NULL) "
    "ON CONFLICT (notification, sink) DO NOTHING"
)


CLAIM_STALE_S = 120.0  # an unfinished claim older than this (clock seconds) was left by a process that died


def _claim(value: str) -> tuple[int, bool, float]:
    """(minute end, finished, claimed at) of a stored claim; a bare number is a claim of before, finished."""
    parsed = json.loads(value)
    if isinstance(parsed, list):
        return int(parsed[0]), bool(parsed[1]), float(parsed[2])
    return int(parsed), True, 0.0


class AlertQueries(StoreBase):
    async def alert_states(self, deployment: str | None = None) -> dict[str, AlertState]:
        """Rule -> state for one deployment; with None, every deployment's, keyed "deployment\\0rule"."""
        where, params = ("WHERE deployment = ?", (deployment,)) if deployment is not None else ("", ())
        return {
            (row["rule"] if deployment is not None else f"{row['deployment']}\0{row['rule']}"): AlertState(
                row["rule"], row["deployment"], row["state"], row["active_since"], row["last_true"], row["value"]
            )
            for row in await self.db.fetch_all(f"SELECT * FROM alert_state {where}", params)
        }

    async def save_alerts(
        self,
        states: Sequence[AlertState],
        notifications: Sequence[Notification],
        silenced: Sequence[Sequence[str]] = (),
    ) -> None:
        """New rule states and the notifications they made, in one transaction (neither is kept without the other).
        `silenced[i]` lists the silences that matched `notifications[i]`'s alert: stored with it, no sink sends it.
        An alert that became inactive loses its acknowledgement (the next firing needs a new one)."""
        now = int(self.clock())
        silenced_by = [json.dumps(list(ids)) if ids else None for ids in silenced]
        silenced_by += [None] * (len(notifications) - len(silenced_by))
        async with self.db.transaction() as tx:
            await tx.execute_many(
                UPSERT_STATE, [(s.rule, s.deployment, s.state, s.active_since, s.last_true, s.value) for s in states]
            )
            await tx.execute_many(
                "UPDATE alert_state SET ack_by = NULL, ack_s = NULL, ack_comment = NULL "
                "WHERE rule = ? AND deployment = ? AND ack_s IS NOT NULL",
                [(s.rule, s.deployment) for s in states if s.state == "inactive"],
            )
            await tx.execute_many(
                INSERT_NOTIFICATION,
                [
                    (
                        n.rule,
                        n.deployment,
                        n.status,
                        n.starts_at,
                        n.ends_at,
                        n.value,
                        n.severity,
                        n.runbook,
                        now,
                        n.class_name,
                        silenced,
                    )
                    for n, silenced in zip(notifications, silenced_by, strict=True)
                ],
            )

    async def undelivered(self, sink: str, within_s: int = 86400) -> list[Notification]:
        """Notifications of the last day that `sink` has not delivered yet, oldest first (not the silenced ones:
        those are never sent)."""
        rows = await self.db.fetch_all(
            "SELECT * FROM alert_notifications n WHERE created_s >= ? AND silenced_by IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM alert_deliveries d WHERE d.notification = n.id AND d.sink = ?) ORDER BY id",
            (int(self.clock()) - within_s, sink),
        )
        return [
            Notification(
                row["rule"], row["deployment"], row["status"], row["starts_at"], row["ends_at"], row["value"],
                row["severity"], row["runbook"], row["id"], row["class_name"],
            )
            for row in rows
        ]  # fmt: skip

    async def mark_silenced(self, silenced: dict[int, list[str]]) -> list[int]:
        """Mark notifications silenced by these silences (id -> silence ids), unless a sink has sent or is sending
        one already (it then goes to every sink, as it began); the log's line does not count (it reaches nobody).
        Returns the ids marked."""
        marked = []
        for notification, ids in silenced.items():
            changed = await self.db.execute(
                "UPDATE alert_notifications SET silenced_by = ? WHERE id = ? AND silenced_by IS NULL AND NOT EXISTS "
                "(SELECT 1 FROM alert_deliveries d WHERE d.notification = alert_notifications.id AND d.sink <> 'log')",
                (json.dumps(ids), notification),
            )
            if changed == 1:
                marked.append(notification)
        return marked

    async def acknowledge(self, rule: str, deployment: str, ack: Acknowledgement) -> str | None:
        """Record `ack` on the alert if it is pending or firing. Answers its state ("pending" or "firing": recorded;
        "inactive": not), or None when no state of that rule and deployment is stored."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE alert_state SET ack_by = ?, ack_s = ?, ack_comment = ? "
                "WHERE rule = ? AND deployment = ? AND state IN ('pending', 'firing')",
                (ack.by, ack.at, ack.comment, rule, deployment),
            )
            row = await tx.fetch_one(
                "SELECT state FROM alert_state WHERE rule = ? AND deployment = ?", (rule, deployment)
            )
        if row is None:
            return None
        return str(row["state"]) if changed else "inactive"

    async def acknowledgements(self, deployment: str | None = None) -> dict[tuple[str, str], Acknowledgement]:
        """(deployment, rule) -> the acknowledgement of each acknowledged alert."""
        where, params = ("AND deployment = ?", (deployment,)) if deployment is not None else ("", ())
        rows = await self.db.fetch_all(
            f"SELECT rule, deployment, ack_by, ack_s, ack_comment FROM alert_state WHERE ack_s IS NOT NULL {where}",
            params,
        )
        return {
            (row["deployment"], row["rule"]): Acknowledgement(row["ack_by"], row["ack_s"], row["ack_comment"] or "")
            for row in rows
        }

    async def claim_deliveries(self, sink: str, ids: Sequence[int]) -> list[int]:
        """Claim notifications for delivery by `sink`; returns the ones this process got (another process sharing
        the database may have claimed some already). A failed delivery gives its claims back."""
        now = int(self.clock())
        claimed = []
        for notification in ids:
            if await self.db.execute(CLAIM_DELIVERY, (notification, sink, now, notification)) == 1:
                claimed.append(notification)
        return claimed

    async def release_deliveries(self, sink: str, ids: Sequence[int]) -> None:
        await self.db.execute_many(
            "DELETE FROM alert_deliveries WHERE notification = ? AND sink = ?", [(i, sink) for i in ids]
        )

    async def claim_minute(self, key: str, minute_end: int, stale_s: float = CLAIM_STALE_S) -> bool:
        """True for exactly one caller per (key, minute), across every process on the database: who evaluates it.

        Minutes are claimed in order, and only once the previous claim was finished (`finish_minute`): a process
        that evaluates minute n+1 reads the states that minute n saved, even when every process catches up at
        once. A claim left unfinished for `stale_s` (its process died) no longer blocks the next."""
        now = self.clock()
        async with self.db.transaction() as tx:
            await tx.lock(key)  # the read and the write below, one process at a time
            row = await tx.fetch_one("SELECT value FROM meta WHERE key = ?", (key,))
            if row is not None:
                claimed_end, finished, claimed_at = _claim(row["value"])
                if claimed_end >= minute_end or (not finished and now - claimed_at < stale_s):
                    return False
            await tx.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps([minute_end, False, now])),
            )
        return True

    async def finish_minute(self, key: str, minute_end: int) -> None:
        """The claim of this minute is done (its states saved): the next minute may be claimed."""
        async with self.db.transaction() as tx:
            await tx.lock(key)
            row = await tx.fetch_one("SELECT value FROM meta WHERE key = ?", (key,))
            if row is not None and _claim(row["value"])[0] == minute_end:
                await tx.execute(
                    "UPDATE meta SET value = ? WHERE key = ?", (json.dumps([minute_end, True, self.clock()]), key)
                )

    async def alert_rules(self) -> list[dict[str, Any]]:
        rows = await self.db.fetch_all("SELECT definition FROM alert_rules ORDER BY created_s, name")
        return [json.loads(row["definition"]) for row in rows]

    async def add_alert_rule(self, name: str, definition: dict[str, Any]) -> bool:
        """False when a rule of that name exists already (names are unique across processes)."""
        changed = await self.db.execute(
            "INSERT INTO alert_rules (name, definition, created_s) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
            (name, json.dumps(definition), int(self.clock())),
        )
        return changed == 1

    async def delete_alert_rule(self, name: str) -> bool:
        """Delete the rule and its state; where it was firing, a resolved notification goes out (else the
        receiver would hold a firing alert that nothing will ever resolve). False: no such rule."""
        now = int(self.clock())
        async with self.db.transaction() as tx:
            row = await tx.fetch_one("SELECT definition FROM alert_rules WHERE name = ?", (name,))
            if row is None:
                return False
            rule = json.loads(row["definition"])
            await tx.execute(
                "INSERT INTO alert_notifications (rule, deployment, status, starts_at, ends_at, value, severity, "
                "runbook, created_s, class_name) SELECT rule, deployment, 'resolved', active_since, "
                "CAST(? AS BIGINT), value, CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS TEXT) "
                "FROM alert_state WHERE rule = ? AND state = 'firing'",
                (now, rule.get("severity", "warning"), rule.get("runbook", ""), now, rule.get("class", ""), name),
            )
            await tx.execute("DELETE FROM alert_state WHERE rule = ?", (name,))
            await tx.execute("DELETE FROM alert_rules WHERE name = ?", (name,))
        return True

    async def alert_history(self, deployment: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, params = ("WHERE deployment = ?", [deployment]) if deployment else ("", [])
        rows = await self.db.fetch_all(
            f"SELECT * FROM alert_notifications {where} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [{**dict(row), "silenced_by": json.loads(row["silenced_by"] or "[]")} for row in rows]
