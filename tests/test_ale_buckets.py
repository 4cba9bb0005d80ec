"""ALE task data from buckets: ``--ale-data s3://...`` against moto's S3 server and
``--ale-data gs://...`` against the gcp-storage-emulator, both on loopback.

The data of ``tests/data/ale/data`` is uploaded under a prefix; the ALE tree runs with the
oracle from the bucket, a variant the bucket lacks is skipped naming the URL it looked
at, and the host cache follows the bucket (changed objects fetched again, removed ones
deleted, an object escaping its folder refused).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_ale.datastore import open_store
from pytest_ale.errors import InfrastructureError

from .conformance.sshd import free_port
from .conftest import results

DATA = Path(__file__).parent / "data" / "ale"
PREFIX = "ale-data"


@dataclass
class Bucket:
    url: str
    put: Callable[[str, bytes], None]
    delete: Callable[[str], None]


def _s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    pytest.importorskip("moto")
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3")
    client.create_bucket(Bucket="ale-bucket")
    try:
        yield Bucket(
            f"s3://ale-bucket/{PREFIX}",
            lambda key, data: client.put_object(Bucket="ale-bucket", Key=key, Body=data),
            lambda key: client.delete_object(Bucket="ale-bucket", Key=key),
        )
    finally:
        server.stop()


def _gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    pytest.importorskip("gcp_storage_emulator")
    from gcp_storage_emulator.server import create_server
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    client = storage.Client(project="ale-emulator", credentials=AnonymousCredentials())
    bucket = client.create_bucket("ale-bucket")
    try:
        yield Bucket(
            f"gs://ale-bucket/{PREFIX}",
            lambda key, data: bucket.blob(key).upload_from_string(data),
            lambda key: bucket.blob(key).delete(),
        )
    finally:
        server.stop()


@pytest.fixture(params=["s3", "gs"])
def bucket(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Bucket]:
    monkeypatch.setenv("ALE_DATA_CACHE", str(tmp_path / "cache"))
    made = _s3(monkeypatch) if request.param == "s3" else _gcs(monkeypatch)
    found = next(made)
    for path in sorted((DATA / "data").rglob("*")):
        if path.is_file():
            found.put(f"{PREFIX}/{path.relative_to(DATA / 'data').as_posix()}", path.read_bytes())
    yield found
    next(made, None)


def test_ale_tree_runs_from_a_bucket(pytester: pytest.Pytester, bucket: Bucket, tmp_path: Path) -> None:
    shutil.copytree(DATA / "tree", pytester.path / "ale")
    run = pytester.runpytest_subprocess(
        "ale/tasks",
        "--ale-data",
        bucket.url,
        "-k",
        "word_census or column_total or missing_corpus",
        "-p",
        "no:cacheprovider",
        "-rs",
    )
    run.assert_outcomes(passed=3, skipped=1)
    missing = f"{bucket.url}/textops/missing_corpus/base"
    run.stdout.fnmatch_lines([f"SKIPPED*missing_corpus/main.py: task data not found: no folder {missing} *"])
    rows = {(r["task"], r["variant"]): r for r in results(pytester)}
    assert {k: r["score"] for k, r in rows.items()} == {
        ("word_census", "base"): 1.0,
        ("column_total", "q1"): 1.0,
        ("column_total", "q2"): 1.0,
    }
    cached = (
        tmp_path / "cache" / bucket.url.split(":", 1)[0] / "ale-bucket" / PREFIX / "textops" / "word_census"
    )
    assert (cached / "base" / "reference" / "census.json").is_file()  # on the host, not in a sandbox


def test_the_cache_follows_the_bucket(bucket: Bucket) -> None:
    store = open_store(bucket.url, Path("/nonexistent"))
    assert store is not None
    rel = ("textops", "word_census", "base")
    folder = store.folder(rel)
    readme = folder / "software" / "README.txt"
    assert readme.is_file() and (folder / "input" / "passage.txt").is_file()
    bucket.put(f"{PREFIX}/textops/word_census/base/input/passage.txt", b"changed upstream\n")
    bucket.delete(f"{PREFIX}/textops/word_census/base/software/README.txt")
    again = store.folder(rel)
    assert again == folder
    assert (folder / "input" / "passage.txt").read_text() == "changed upstream\n"
    assert not readme.exists()
    assert store.has(rel) and not store.has(("textops", "missing_corpus", "base"))

    if not bucket.url.startswith("s3://"):
        return  # the GCS emulator itself refuses such a name; S3 (and moto) store it
    bucket.put(f"{PREFIX}/textops/evil/base/input/../../../../escape.txt", b"x")
    with pytest.raises(InfrastructureError, match="outside its folder"):
        store.folder(("textops", "evil", "base"))
