"""The bench's memory watch: the peak of the run's processes, overall and per stage of the run."""
from __future__ import annotations

from pipeline.cli.memory_watch import MemoryWatch

MB = 1 << 20


def test_each_stage_keeps_the_peak_seen_while_it_ran():
    watch = MemoryWatch()  # not started: sampled by hand here
    watch.enter_stage("read")
    watch.enter_stage("evaluate")
    held = b"x" * (200 * MB)  # touched pages: 200 MB more resident while "evaluate" runs
    watch.sample()
    watch.enter_stage("publish")
    del held
    watch.sample()
    assert watch.peak_by_stage["evaluate"] - watch.peak_by_stage["read"] > 150 * MB
    assert watch.peak_rss == watch.peak_by_stage["evaluate"]
    assert set(watch.peak_by_stage) == {"", "read", "evaluate", "publish"}  # "": before the first stage


def test_announcing_the_current_stage_again_keeps_its_samples():
    watch = MemoryWatch()
    watch.enter_stage("audiences")
    first = watch.peak_by_stage.copy()
    watch.enter_stage("audiences")  # progress inside the stage: no new stage, no new sample
    assert watch.peak_by_stage == first and watch.stage == "audiences"
