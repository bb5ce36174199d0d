"""Issue 11's drill: two nodes (us-east-1 primary, us-west-2 replica, separate stores, SigV4).
The replica's node is killed with SIGKILL 20 times during a stream of rotations and imports
(of an imported-material set's material, on the primary), the primary's
node once between rotations, and the link from the replica to the primary is cut (a
partition) and restored. After each disturbance the Regions converge: the same material ids and
rotation history for the shared properties, every event applied exactly once."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.e2e.conftest import free_port, root_identities

EAST, WEST = "us-east-1", "us-west-2"
NODE_KEY = ("AKIAE2EDRILL00000001", "e2e/drill/node/secret/000000000000000001")
KILLS = 20


class Link:
    """A TCP forwarder from the replica's node to the primary's: cut() refuses and drops every
    connection (a partition), heal() lets them through again."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.open = threading.Event()
        self.open.set()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self.open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            self._connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while self.open.is_set() and (data := source.recv(65536)):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.close()
            except OSError:
                pass

    def cut(self) -> None:
        self.open.clear()
        for s in self._connections:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._connections.clear()

    def heal(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.cut()
        self._server.close()


@pytest.fixture(scope="module")
def drill(server_factory, store):
    identities = root_identities()
    identities["nodes"] = {"access_keys": [
        {"access_key_id": NODE_KEY[0], "secret_access_key": NODE_KEY[1]}]}
    east_port, west_port = free_port(), free_port()
    link = Link(east_port)  # the replica reads the primary's feed through the link
    east = server_factory("drill-east", start=False, port=east_port, store=store,
                          identities=identities,
                          extra_args=("--regions", EAST,
                                      "--peers", f"{WEST}=http://127.0.0.1:{west_port}"))
    west = server_factory("drill-west", start=False, port=west_port, store=store,
                          identities=identities,
                          extra_args=("--regions", WEST, "--default-region", WEST,
                                      "--peers", f"{EAST}=http://127.0.0.1:{link.port}"))
    east.start()
    west.start()
    yield east, west, link
    link.close()


def _import(client, key_id: str, material: bytes, **expiration) -> str:
    """GetParametersForImport and ImportKeyMaterial of ``material`` (RSAES_OAEP_SHA_256)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    parameters = client.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                                  WrappingKeySpec="RSA_2048")
    public = serialization.load_der_public_key(parameters["PublicKey"])
    wrapped = public.encrypt(material, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                                    algorithm=hashes.SHA256(), label=None))
    return client.import_key_material(
        KeyId=key_id, ImportToken=parameters["ImportToken"], EncryptedKeyMaterial=wrapped,
        **(expiration or {"ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}))["KeyMaterialId"]


def _shared(client, key_id: str) -> tuple[str, list[str]]:
    """A key's shared material state: the current material id and the rotation history."""
    current = client.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    rotations = [r["KeyMaterialId"] for r in client.list_key_rotations(KeyId=key_id)["Rotations"]]
    return current, rotations


def _converged(east, west, keys, timeout: float = 10.0) -> None:
    e, w = east.kms(EAST), west.kms(WEST)
    deadline = time.monotonic() + timeout
    while True:
        expected = [_shared(e, k) for k in keys]
        # (and no rotation waits for the replica: the newest material is the current one)
        settled = all(not rotations or current == rotations[-1] for current, rotations in expected)
        try:
            if settled and [_shared(w, k) for k in keys] == expected:
                return
        except Exception:  # noqa: BLE001 - the node is still starting
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the Regions did not converge within {timeout}s")
        time.sleep(0.05)


def test_kill_the_replica_node_20_times_kill_the_primary_cut_the_link(drill):
    east, west, link = drill
    e = east.kms(EAST)
    keys = [e.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"] for _ in range(2)]
    for key_id in keys:
        e.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    # an imported-material set: each Region imports the same material (as on AWS)
    material = bytes(range(32))
    imported = e.create_key(MultiRegion=True, Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    material_id = _import(e, imported, material)
    e.replicate_key(KeyId=imported, ReplicaRegion=WEST)
    _converged(east, west, keys)
    assert _import(west.kms(WEST), imported, material) == material_id
    rotations = 0
    for n in range(KILLS):  # SIGKILL the replica's node while the primary rotates and imports
        west.kill()
        e.rotate_key_on_demand(KeyId=keys[n % 2])
        rotations += 1
        if n % 5 == 2:  # the primary re-imports its material (a new expiration), meanwhile
            _import(e, imported, material, ExpirationModel="KEY_MATERIAL_EXPIRES",
                    ValidTo=time.time() + 86400 * (30 + n))
        if n % 4 == 0:
            west.restart(crash=True)
            e.rotate_key_on_demand(KeyId=keys[(n + 1) % 2])  # while it catches up
            rotations += 1
        else:
            west.restart(crash=True)
    _converged(east, west, keys)

    east.kill()  # the primary's node, between rotations
    east.restart(crash=True)
    e = east.kms(EAST)
    e.rotate_key_on_demand(KeyId=keys[0])
    rotations += 1
    _converged(east, west, keys)

    link.cut()  # a partition: the replica cannot read the primary's feed
    e.rotate_key_on_demand(KeyId=keys[1])
    rotations += 1
    time.sleep(0.5)
    assert _shared(west.kms(WEST), keys[1]) != _shared(e, keys[1])  # really cut off
    link.heal()
    _converged(east, west, keys)

    # exactly once: one synchronization per shared-property change, none twice, none missing:
    # the creation, each rotation, and each rotation's material becoming current once the
    # replica held it (a rotation made while another waited replaced it as the one waiting)
    w = west.kms(WEST)
    synchronized = sum(
        [ev["Type"] for ev in west.events(k, WEST)["Events"]].count("MultiRegionKeySynchronized")
        for k in keys)
    completed = sum(
        [ev["Type"] for ev in east.events(k, EAST)["Events"]].count("MultiRegionRotationCompleted")
        for k in keys)
    assert len(keys) <= completed <= rotations
    assert synchronized == len(keys) + rotations + completed
    assert sum(len(w.list_key_rotations(KeyId=k)["Rotations"]) for k in keys) == rotations
    for key_id in [*keys, imported]:  # and what the primary encrypts, the replica decrypts
        blob = e.encrypt(KeyId=key_id, Plaintext=b"after the drill")["CiphertextBlob"]
        assert w.decrypt(CiphertextBlob=blob)["Plaintext"] == b"after the drill"
    assert _shared(w, imported)[0] == _shared(e, imported)[0] == material_id
