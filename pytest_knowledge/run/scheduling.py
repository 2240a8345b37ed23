"""xdist scheduling by model group that survives a crashed worker.

xdist's ``loadgroup`` keeps each group on one worker, which is what lets a worker load
each model once. When a worker dies, though, it puts the crashed group back in the
queue with the crashed test still pending, so the test runs again or the session
waits for it forever. Here the crashed test is reported once and dropped; the rest of
its group goes back to the queue for the replacement worker.
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadGroupScheduling


class ModelGroupScheduling(LoadGroupScheduling):
    def remove_node(self, node: Any) -> str | None:
        workload = self.assigned_work.pop(node)
        pending = {scope: [nid for nid, done in unit.items() if not done] for scope, unit in workload.items()}
        crashed = next((nids[0] for nids in pending.values() if nids), None)
        if crashed is None:
            return None
        for scope, nids in pending.items():
            remaining = {nid: False for nid in nids if nid != crashed}
            if remaining:
                self.workqueue[scope] = remaining
        for other in self.assigned_work:
            self._reschedule(other)
        return crashed
