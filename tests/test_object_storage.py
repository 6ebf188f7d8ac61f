"""Collections on object storage: the tables in an S3 bucket, served on loopback by moto's S3
server (the real S3 wire protocol; no cloud is reachable here), their metadata in the
workspace; the same hits as a collection on disk."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli
from workbench.services import Service, init_workspace

BUCKET = "workbench-test"
SECRETS = {"WB_S3_KEY": "test-key", "WB_S3_SECRET": "test-secret"}


@pytest.fixture
def s3():
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=SECRETS["WB_S3_KEY"],
        aws_secret_access_key=SECRETS["WB_S3_SECRET"],
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    yield url, client
    server.stop()


def test_a_collection_on_s3_answers_as_one_on_disk(model_workspace, s3, tmp_path):
    url, client = s3
    corpus = tmp_path / "notes"
    corpus.mkdir()
    (corpus / "tea.md").write_text("# Tea\n\n## Brewing\n\nGreen tea is steeped at 80 degrees Celsius.\n")
    (corpus / "coffee.md").write_text("# Coffee\n\nEspresso is brewed at 9 bar of pressure.\n")

    on_disk, _ = init_workspace(tmp_path / "local")
    for model in model_workspace.models_dir.iterdir():
        (on_disk / "models" / model.name).symlink_to(model.resolve())
    disk = Service(on_disk)
    disk.ingest("notes", str(corpus))
    expected = disk.search("notes", "water for green tea")

    model_workspace.config_path.write_text(
        "[documents]\n"
        f'lancedb_uri = "s3://{BUCKET}/collections"\n'
        f'storage_options = {{ aws_endpoint = "{url}", region = "us-east-1", allow_http = "true" }}\n'
        'storage_secrets = { aws_access_key_id = "WB_S3_KEY", aws_secret_access_key = "WB_S3_SECRET" }\n'
    )
    ingested = run_cli("ingest", str(corpus), "-c", "notes", "--json", env=SECRETS, check=True, timeout=300)
    assert len(json.loads(ingested.stdout)["added"]) == 2
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert any(k.startswith("collections/notes.lance/data/") for k in keys), keys
    assert not (model_workspace.lancedb_dir / "notes.lance").exists(), "nothing of the table on disk"

    hits = json.loads(
        run_cli("search", "water for green tea", "-c", "notes", "--json", env=SECRETS, check=True).stdout
    )
    assert [(h["path"].rsplit("/", 1)[1], h["text"], round(h["score"], 5)) for h in hits] == [
        (h["path"].rsplit("/", 1)[1], h["text"], round(h["score"], 5)) for h in expected
    ]
    again = json.loads(
        run_cli("ingest", str(corpus), "-c", "notes", "--json", env=SECRETS, check=True).stdout
    )
    assert again["unchanged"] == 2 and again["chunks_added"] == 0
    # Versions and restore, on the bucket: a file removed, then the version that had it back.
    first_version = json.loads(ingested.stdout)["version"]
    (corpus / "coffee.md").unlink()
    removed = json.loads(
        run_cli("ingest", str(corpus), "-c", "notes", "--json", env=SECRETS, check=True).stdout
    )
    assert [p.rsplit("/", 1)[1] for p in removed["removed"]] == ["coffee.md"]
    run_cli("collections", "restore", "notes", str(first_version), env=SECRETS, check=True)
    restored = json.loads(
        run_cli("search", "espresso pressure", "-c", "notes", "--json", env=SECRETS, check=True).stdout
    )
    assert restored[0]["path"].endswith("coffee.md")
    doctor = run_cli("doctor", env=SECRETS)
    assert f"collections in s3://{BUCKET}/collections" in doctor.stdout

    # A secret whose variable is not set: a clear error, nothing stored lost.
    missing = run_cli("search", "tea", "-c", "notes", env={"WB_S3_KEY": "test-key", "WB_S3_SECRET": ""})
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert "$WB_S3_SECRET, which is not set" in missing.stderr and "export WB_S3_SECRET" in missing.stderr
    assert len(client.list_objects_v2(Bucket=BUCKET)["Contents"]) >= len(keys)
