"""The service side of the state store: validate -> store -> apply, replay at start, restarts."""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import ConfigErrors, load_config
from bgpd.service import BgpdService
from bgpd.state.store import Change, MemoryStore, SqliteStore, StateError
from bgpd.statecontrol import AlreadyExists, NotFound, resolve_state_dir
from bgpd.wire.constants import FAMILIES_BY_NAME
from bgpd.wire.nlri import prefix_from_str

FILE = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []
state_dir = "state"

[[neighbors]]
address = "192.0.2.2"
remote_as = 65002
import_policy = ["mine"]
export_policy = ["accept-all"]

[[originate]]
prefix = "198.51.100.0/24"

[policies.mine]
default = "accept"
"""

#: the file with policy "mine" dropped, and the neighbor that used it left on its defaults
FILE_WITHOUT_MINE = FILE.replace('import_policy = ["mine"]', "").replace(
    '[policies.mine]\ndefault = "accept"', "")
IPV4 = FAMILIES_BY_NAME["ipv4-unicast"]


def neighbor(address: str, **extra: object) -> dict:
    return {"address": address, "remote_as": 65009, "import_policy": ["accept-all"],
            "export_policy": ["accept-all"], **extra}


class _ServiceCase(SynchronousTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bgpd-statectl-")
        self.addCleanup(shutil.rmtree, self.dir)
        self.path = os.path.join(self.dir, "bgpd.toml")
        self.write(FILE)
        self.reactor = MemoryReactorClock()
        self.logged: list[str] = []

        def observe(event: dict) -> None:
            if event.get("log_namespace", "").startswith("bgpd"):
                self.logged.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def write(self, text: str) -> None:
        with open(self.path, "w") as f:
            f.write(text)

    def start(self, store=None) -> BgpdService:
        base = load_config(self.path)
        svc = BgpdService(base, self.path, self.reactor, store=store)
        svc.startService()
        self.addCleanup(self.stop, svc)
        return svc

    def stop(self, svc: BgpdService) -> None:
        if svc.running:
            d = svc.stopService()
            self.reactor.advance(5)
            self.successResultOf(d)

    def connects(self) -> list[str]:
        return [c[0] for c in self.reactor.tcpClients]

    def originated(self, svc: BgpdService) -> dict[str, int | None]:
        """prefix -> MED of every originated path in the Loc-RIB."""
        rib = svc.rib_service.rib
        rib.drain()
        wanted = {}
        for route in svc.config.originate:
            key = prefix_from_str(route.prefix)[1]
            best = rib.best(IPV4, key)
            if best is not None:
                wanted[route.prefix] = best.attrs.med
        self.assertEqual(len(wanted), rib.loc_rib_size(IPV4))
        return wanted


class StateControlTests(_ServiceCase):
    def test_add_neighbor_validates_stores_and_starts(self):
        """An added neighbor is stored, becomes part of the config and starts connecting."""
        store = MemoryStore()
        svc = self.start(store)
        n = svc.state.add_neighbor(neighbor("192.0.2.9", hold_time=30))
        self.assertEqual((n.address, n.hold_time), ("192.0.2.9", 30))
        self.assertIn("192.0.2.9", svc.sessions.peers)
        self.assertIn("192.0.2.9", self.connects())
        self.assertEqual([(c.kind, c.key, c.op) for c in store.changes()], [("neighbor", "192.0.2.9", "put")])

    def test_bad_neighbor_changes_nothing(self):
        """A table that does not validate raises ConfigErrors naming the key; nothing is stored or run."""
        store = MemoryStore()
        svc = self.start(store)
        before = svc.config
        err = self.assertRaises(ConfigErrors, svc.state.add_neighbor, neighbor("192.0.2.9", hold_time=1))
        self.assertEqual(err.errors[0].key, "neighbors[1].hold_time")
        err = self.assertRaises(ConfigErrors, svc.state.add_neighbor, {"remote_as": 1})
        self.assertEqual(err.key, "address")
        self.assertEqual(store.changes(), [])
        self.assertIs(svc.config, before)
        self.assertNotIn("192.0.2.9", svc.sessions.peers)

    def test_write_failure_changes_nothing(self):
        """When the store cannot write, the call raises StateError and nothing is applied."""
        store = MemoryStore()
        svc = self.start(store)
        store.fail = "disk full"
        before = svc.config
        self.assertRaises(StateError, svc.state.add_neighbor, neighbor("192.0.2.9"))
        self.assertRaises(StateError, svc.state.originate, [{"prefix": "203.0.113.0/24"}])
        self.assertIs(svc.config, before)
        self.assertNotIn("192.0.2.9", svc.sessions.peers)
        self.assertEqual(self.originated(svc), {"198.51.100.0/24": None})
        self.assertEqual(svc.state.overlay, [])

    def test_exists_and_not_found(self):
        """Adding a configured neighbor is AlreadyExists; changing or removing an unknown one NotFound."""
        svc = self.start(MemoryStore())
        self.assertRaises(AlreadyExists, svc.state.add_neighbor, neighbor("192.0.2.2"))
        self.assertRaises(NotFound, svc.state.update_neighbor, neighbor("192.0.2.77"))
        self.assertRaises(NotFound, svc.state.remove_neighbor, "192.0.2.77")
        self.assertRaises(NotFound, svc.state.withdraw, ["203.0.113.0/24"])

    def test_update_and_remove_file_neighbor(self):
        """A file's neighbor can be changed and removed through the API; the removal is kept."""
        store = MemoryStore()
        svc = self.start(store)
        n = svc.state.update_neighbor(neighbor("192.0.2.2", remote_as=65002, import_policy=["mine"],
                                               description="changed"))
        self.assertEqual(n.description, "changed")
        svc.state.remove_neighbor("192.0.2.2")
        self.assertNotIn("192.0.2.2", svc.sessions.peers)
        self.assertEqual([(c.key, c.op) for c in store.changes()], [("192.0.2.2", "remove")])

    def test_removing_api_neighbor_forgets_it(self):
        """Removing a neighbor only the API added leaves no row: the file decides again."""
        store = MemoryStore()
        svc = self.start(store)
        svc.state.add_neighbor(neighbor("192.0.2.9"))
        svc.state.remove_neighbor("192.0.2.9")
        self.assertEqual(store.changes(), [])
        self.assertNotIn("192.0.2.9", svc.sessions.peers)

    def test_originate_and_withdraw(self):
        """Originated paths enter the Loc-RIB with their attributes and leave on withdraw."""
        svc = self.start(MemoryStore())
        out = svc.state.originate([{"prefix": "203.0.113.0/24", "med": 5},
                                   {"prefix": "198.51.100.0/24", "med": 9}])
        self.assertEqual([o.med for o in out], [5, 9])
        self.assertEqual(self.originated(svc), {"198.51.100.0/24": 9, "203.0.113.0/24": 5})
        svc.state.withdraw(["198.51.100.0/24"])
        self.assertEqual(self.originated(svc), {"203.0.113.0/24": 5})

    def test_bad_prefix_names_its_place(self):
        """A batch with a bad prefix names its index and originates none of it."""
        svc = self.start(MemoryStore())
        err = self.assertRaises(ConfigErrors, svc.state.originate,
                                [{"prefix": "203.0.113.0/24"}, {"prefix": "nope"}])
        self.assertEqual(err.key, "originate[1].prefix")
        self.assertEqual(self.originated(svc), {"198.51.100.0/24": None})

    def test_replace_policies(self):
        """Replaced policies apply to the running peers and are stored as one change."""
        store = MemoryStore()
        svc = self.start(store)
        svc.state.replace_policies({}, {"mine": {"default": "reject"}})
        self.assertEqual(dict(svc.config.policies)["mine"].default, "reject")
        self.assertIs(svc.rib_service.config, svc.config)
        err = self.assertRaises(ConfigErrors, svc.state.replace_policies, {}, {})
        self.assertEqual(err.key, "neighbors[0].import_policy[0]")
        self.assertEqual(len(store.changes()), 1)

    def test_reload_keeps_the_overlay(self):
        """SIGHUP reload: the newly read file gets the same API changes laid over it."""
        svc = self.start(MemoryStore())
        svc.state.add_neighbor(neighbor("192.0.2.9"))
        svc.state.originate([{"prefix": "203.0.113.0/24", "med": 5}])
        self.write(FILE.replace('address = "192.0.2.2"', 'address = "192.0.2.3"'))
        self.assertTrue(svc.reload())
        self.assertEqual(sorted(svc.sessions.peers), ["192.0.2.3", "192.0.2.9"])
        self.assertEqual(self.originated(svc), {"198.51.100.0/24": None, "203.0.113.0/24": 5})
        self.assertEqual(svc.state.base.neighbor("192.0.2.9"), None)

    def test_reload_refused_when_overlay_no_longer_fits(self):
        """A file that drops a policy an API neighbor uses is refused on reload, naming the key."""
        svc = self.start(MemoryStore())
        svc.state.add_neighbor(neighbor("192.0.2.9", import_policy=["mine"]))
        before = svc.config
        self.write(FILE_WITHOUT_MINE)
        self.assertFalse(svc.reload())
        self.assertIs(svc.config, before)
        self.assertTrue(any("neighbors[1].import_policy[0]" in line and "set through the API" in line
                            for line in self.logged), self.logged)

    def test_neighbor_table_for_merging(self):
        """neighbor_table gives the neighbor as written, file's or API's, for a field-mask merge."""
        svc = self.start(MemoryStore())
        self.assertEqual(svc.state.neighbor_table("192.0.2.2")["import_policy"], ["mine"])
        self.assertNotIn("hold_time", svc.state.neighbor_table("192.0.2.2"))
        svc.state.add_neighbor(neighbor("192.0.2.9", description="api"))
        merged = {**svc.state.neighbor_table("192.0.2.9"), "hold_time": 30}
        self.assertEqual(svc.state.update_neighbor(merged).description, "api")
        self.assertIsNone(svc.state.neighbor_table("192.0.2.77"))
        self.assertIsNone(svc.state.neighbor_table("not an address"))

    def test_config_toml_marks_api(self):
        """config_toml prints the effective config with the API's neighbor marked."""
        svc = self.start(MemoryStore())
        svc.state.add_neighbor(neighbor("192.0.2.9"))
        text = svc.state.config_toml()
        self.assertIn('# from the API (state store)\n[[neighbors]]\naddress = "192.0.2.9"', text)
        self.assertEqual(svc.state.effective_config(), svc.config)


class RestartTests(_ServiceCase):
    def store(self) -> SqliteStore:
        return SqliteStore(resolve_state_dir(load_config(self.path), self.path))

    def test_restart_replays_the_store(self):
        """Changes made through the API are back after a rebuild from the same state_dir."""
        svc = self.start(self.store())
        svc.state.add_neighbor(neighbor("192.0.2.9", hold_time=30))
        svc.state.remove_neighbor("192.0.2.2")
        svc.state.replace_policies({}, {"mine": {"default": "reject"}, "extra": {"default": "accept"}})
        svc.state.originate([{"prefix": "203.0.113.0/24", "med": 5, "communities": ["65000:7"]}])
        svc.state.withdraw(["198.51.100.0/24"])
        running = svc.config
        toml = svc.state.config_toml()
        self.stop(svc)
        self.reactor = MemoryReactorClock()

        again = self.start(self.store())
        self.assertEqual(again.config, running)
        self.assertEqual(sorted(again.sessions.peers), ["192.0.2.9"])
        self.assertEqual(again.sessions.peers["192.0.2.9"].config.hold_time, 30)
        self.assertEqual(self.connects(), ["192.0.2.9"])
        self.assertEqual(self.originated(again), {"203.0.113.0/24": 5})
        best = again.rib_service.rib.best(IPV4, prefix_from_str("203.0.113.0/24")[1])
        self.assertEqual(best.attrs.communities, (65000 << 16 | 7,))
        self.assertEqual([name for name, _ in again.config.policies], ["mine", "extra"])
        self.assertEqual(again.state.config_toml(), toml)

    def test_overlay_in_place_before_sessions_start(self):
        """The replayed neighbor is in the config the tree is built from, before any session starts."""
        SqliteStore(os.path.join(self.dir, "state")).record(
            [Change("neighbor", "192.0.2.9", "put", neighbor("192.0.2.9"))])
        svc = BgpdService(load_config(self.path), self.path, self.reactor, store=self.store())
        self.assertEqual([n.address for n in svc.sessions.config.neighbors], ["192.0.2.2", "192.0.2.9"])
        self.assertIs(svc.rib_service.config, svc.sessions.config)
        self.assertEqual(self.connects(), [])
        svc.startService()
        self.addCleanup(self.stop, svc)
        self.assertEqual(sorted(self.connects()), ["192.0.2.2", "192.0.2.9"])

    def test_corrupt_store_set_aside(self):
        """A corrupt state file is reported by key, renamed with a timestamp; bgpd starts from the file."""
        os.makedirs(os.path.join(self.dir, "state"))
        bad = os.path.join(self.dir, "state", "state.sqlite3")
        with open(bad, "wb") as f:
            f.write(b"garbage" * 1000)
        svc = self.start(self.store())
        self.assertEqual(svc.config, load_config(self.path))
        self.assertEqual(sorted(svc.sessions.peers), ["192.0.2.2"])
        names = os.listdir(os.path.join(self.dir, "state"))
        aside = [n for n in names if n.startswith("state.sqlite3.corrupt-")]
        self.assertEqual(len(aside), 1, aside)
        self.assertTrue(any(bad in line and "moved aside" in line for line in self.logged), self.logged)
        # the fresh store works
        svc.state.add_neighbor(neighbor("192.0.2.9"))
        self.assertEqual(len(self.store().changes()), 1)

    def test_bad_row_reported_by_key(self):
        """A stored row that cannot be read is reported naming its change, and the file set aside."""
        store = self.store()
        store.record([Change("neighbor", "192.0.2.9", "put", neighbor("192.0.2.9"))])
        store._connect().execute("UPDATE changes SET op = 'explode'")
        store.close()
        svc = self.start(self.store())
        self.assertEqual(sorted(svc.sessions.peers), ["192.0.2.2"])
        self.assertTrue(any("neighbor 192.0.2.9" in line for line in self.logged), self.logged)

    def test_unwritable_state_dir(self):
        """An unusable state_dir is reported as bgp.state_dir; bgpd runs from the file, API writes fail."""
        with open(os.path.join(self.dir, "state"), "w") as f:
            f.write("a file where the directory should be")
        svc = self.start(self.store())
        self.assertEqual(sorted(svc.sessions.peers), ["192.0.2.2"])
        self.assertTrue(any(line.startswith("bgp.state_dir:") for line in self.logged), self.logged)
        self.assertRaises(StateError, svc.state.add_neighbor, neighbor("192.0.2.9"))
        self.assertNotIn("192.0.2.9", svc.sessions.peers)

    def test_overlay_that_no_longer_fits_at_start(self):
        """A store that does not fit the file is reported by key, kept, and bgpd starts from the file."""
        table = neighbor("192.0.2.9", import_policy=["mine"])
        self.store().record([Change("neighbor", "192.0.2.9", "put", table)])
        self.write(FILE_WITHOUT_MINE)
        svc = self.start(self.store())
        self.assertEqual(sorted(svc.sessions.peers), ["192.0.2.2"])
        self.assertTrue(any("neighbors[1].import_policy[0]" in line for line in self.logged), self.logged)
        self.assertEqual(len(self.store().changes()), 1)
        # removing the entry that does not fit is how the operator gets out
        err = self.assertRaises(ConfigErrors, svc.state.add_neighbor, neighbor("192.0.2.10"))
        self.assertIn("neighbors[1].import_policy[0]", str(err))

    def test_relative_state_dir_follows_the_config_file(self):
        """A relative state_dir is taken from the config file's directory; an absolute one as written."""
        config = load_config(self.path)
        self.assertEqual(resolve_state_dir(config, self.path), os.path.join(self.dir, "state"))
        absolute = load_config(self.path).bgp.__class__(local_as=1, router_id="192.0.2.1", state_dir="/x/y")
        self.assertEqual(resolve_state_dir(config.__class__(bgp=absolute), self.path), "/x/y")


class TapTests(_ServiceCase):
    def test_make_service_opens_the_store_in_state_dir(self):
        """twistd's makeService opens the SQLite store in the resolved state_dir and replays it."""
        from bgpd.tap import Options, makeService

        SqliteStore(os.path.join(self.dir, "state")).record(
            [Change("neighbor", "192.0.2.9", "put", neighbor("192.0.2.9"))])
        options = Options()
        options.parseOptions(["-c", self.path])
        svc = makeService(options)
        self.assertIsInstance(svc.state.store, SqliteStore)
        self.assertEqual(svc.state.store.state_dir, os.path.join(self.dir, "state"))
        self.assertIsNotNone(svc.config.neighbor("192.0.2.9"))
