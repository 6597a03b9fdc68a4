from __future__ import annotations

from ingest_fixtures import broken_files, tone

from dfpipe.config import DaskConfig, IngestConfig
from dfpipe.flows.ingest import run_ingest_flow
from dfpipe.lake import Lake


def test_ingest_flow_on_a_local_cluster(prefect_server, tmp_path):
    root = tmp_path / "corpus"
    good = [tone(root / "real" / f"r{i}.wav", 200 + 20 * i) for i in range(4)]
    good += [tone(root / "fake" / "gen" / f"f{i}.mp3", 500 + 20 * i) for i in range(4)]
    reasons = broken_files(root / "fake" / "broken", good[0])
    lake = str(tmp_path / "lake")
    config = IngestConfig(files_per_shard=3)

    summary = run_ingest_flow(lake, "flowtest", "folder", root, config=config,
                              dask_config=DaskConfig(n_workers=2), show_progress=False)
    assert (summary.clips, summary.rejects, summary.skipped) == (8, len(reasons), 0)
    assert summary.shards == 4  # 12 inputs, 3 per shard: each shard is one Dask task
    con = Lake(lake).connect()
    assert con.execute("select label, count(*) from clips group by 1 order by 1").fetchall() == [
        ("bonafide", 4), ("spoof", 4)]

    again = run_ingest_flow(lake, "flowtest", "folder", root, config=config,
                            dask_config=DaskConfig(n_workers=2), show_progress=False)
    assert (again.clips, again.rejects, again.skipped) == (0, 0, 12)
