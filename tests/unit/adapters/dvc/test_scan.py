"""Reading a project's outputs without DVC's whole index must agree with it.

`scan` reads plain DVC files with a C YAML parser and hands the rest to
DVC. Each test builds a real git + DVC project and compares what `scan` found
with what DVC's own index declares, output by output.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from dvc_invoke.adapters.dvc import graph
from dvc_invoke.adapters.dvc.model import Output
from dvc_invoke.adapters.dvc.scan import _outputs_of, scan

FILES = {
    # the root pipeline: a folder output, a metric kept in git, a plot, a stage wdir
    "dvc.yaml": """\
        stages:
          prep:
            cmd: echo
            deps: [raw]
            outs: [data/prepared, gen]
            metrics:
              - reports/m.json:
                  cache: false
            plots:
              - reports/p.csv
          elsewhere:
            cmd: echo
            wdir: sub
            outs:
              - "with space.bin"
              - ../outside.bin
              - ../../not-in-the-project.bin
              - remote://store/thing
        """,
    # templated: vars and foreach, so DVC reads it
    "tmpl/params.yaml": "names: [x, y]\n",
    "tmpl/dvc.yaml": """\
        vars: [params.yaml]
        stages:
          each:
            foreach: ${names}
            do:
              cmd: echo ${item}
              outs: ["out_${item}.txt"]
          grid:
            matrix:
              k: [1, 2]
            cmd: echo
            outs: ["grid_${item.k}.txt"]
        """,
    # templated without foreach: only vars and an interpolated path
    "vars/dvc.yaml": """\
        vars:
          - name: result
        stages:
          s:
            cmd: echo
            outs: ["${name}.bin"]
        """,
    # a name YAML 1.1 reads as a boolean: DVC (YAML 1.2) reads text
    "odd/dvc.yaml": """\
        stages:
          s:
            cmd: echo
            outs: [no, "2024-01-01"]
        """,
    # a .dvc file of `dvc add` and one with a wdir
    "raw.dvc": """\
        outs:
        - md5: d41d8cd98f00b204e9800998ecf8427e
          size: 0
          hash: md5
          path: raw
        """,
    "nested/thing.dvc": """\
        wdir: ../store
        outs:
        - path: blob
          cache: false
        """,
    # skipped by DVC's walk: ignored by .dvcignore, by git, or inside an output
    ".dvcignore": "hidden/\n",
    "hidden/dvc.yaml": "stages:\n  h:\n    cmd: echo\n    outs: [h.txt]\n",
    ".gitignore": "/gitignored\n",
    "gitignored/dvc.yaml": "stages:\n  g:\n    cmd: echo\n    outs: [g.txt]\n",
    "gen/dvc.yaml": "stages:\n  inner:\n    cmd: echo\n    outs: [inner.txt]\n",
}


@pytest.fixture
def repo(tmp_path):
    from dvc.repo import Repo

    root = tmp_path / "project"
    root.mkdir()
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    subprocess.run(
        "git init -q && dvc init -q && dvc config core.analytics false"
        " && dvc remote add store ../storage",
        shell=True,
        cwd=root,
        check=True,
    )
    before = os.getcwd()
    os.chdir(root)  # DVC prints addresses relative to the working folder
    try:
        with Repo(os.fspath(root)) as r:
            yield r
    finally:
        os.chdir(before)


def add(repo, rel: str, text: str) -> None:
    path = Path(repo.root_dir) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def dvc_outputs(repo) -> dict[str, Output]:
    found = {}
    for stage in repo.index.stages:
        for out in _outputs_of(repo.root_dir, stage):
            found[out.path] = out
    return found


def test_scan_finds_exactly_the_outputs_dvcs_index_declares(repo):
    expected = dvc_outputs(repo)
    tracked, own = scan(repo, None)
    assert own == []
    assert tracked.by_path == expected
    # the cases this project is made of, so that it cannot pass by being empty
    assert expected["reports/m.json"] == Output("reports/m.json", False, "prep", True)
    assert expected["sub/with space.bin"].stage == "elsewhere"
    assert expected["outside.bin"].cached
    assert {"tmpl/out_x.txt", "tmpl/out_y.txt", "tmpl/grid_1.txt"} <= set(expected)
    assert "vars/result.bin" in expected
    assert {"odd/no", "odd/2024-01-01", "store/blob", "raw"} <= set(expected)
    assert not {"hidden/h.txt", "gitignored/g.txt", "gen/inner.txt"} & set(expected)
    assert not any(p.startswith("..") or "://" in p for p in expected)


def test_the_pipelines_own_stages_come_from_dvc(repo):
    tracked, own = scan(repo, "tmpl/dvc.yaml")
    assert sorted(s.addressing for s in own) == sorted(
        s.addressing for s in repo.index.stages if s.path.endswith(os.path.join("tmpl", "dvc.yaml"))
    )
    assert len(own) == 4  # foreach x, y and matrix 1, 2, as DVC expands them
    assert tracked.by_path == dvc_outputs(repo)


def test_plain_files_are_read_without_dvc_and_unusual_ones_by_dvc(repo, monkeypatch):
    from dvc import dvcfile

    read_by_dvc = []
    load_file = dvcfile.load_file

    def spy(r, path, **kwargs):
        read_by_dvc.append(Path(path).relative_to(r.root_dir).as_posix())
        return load_file(r, path, **kwargs)

    monkeypatch.setattr(dvcfile, "load_file", spy)
    scan(repo, "dvc.yaml")
    # its own file, the templated one, and the one YAML 1.1 would misread
    assert sorted(read_by_dvc) == ["dvc.yaml", "odd/dvc.yaml", "tmpl/dvc.yaml", "vars/dvc.yaml"]


def test_a_malformed_file_elsewhere_is_dvcs_error(repo):
    from dvc.exceptions import DvcException

    add(repo, "broken/dvc.yaml", "stages:\n  s:\n    cmd: [\n")
    with pytest.raises(DvcException):
        scan(repo, None)


def test_stages_in_a_cycle_are_one_clear_error(repo):
    from dvc_invoke.errors import DvcInvokeError

    add(
        repo,
        "loop/dvc.yaml",
        "stages:\n"
        "  a:\n    cmd: echo\n    deps: [b.txt]\n    outs: [a.txt]\n"
        "  b:\n    cmd: echo\n    deps: [a.txt]\n    outs: [b.txt]\n",
    )
    with pytest.raises(DvcInvokeError, match=r"cycle: loop/dvc.yaml:(a|b) -> .* -> loop/dvc"):
        graph.load(Path(repo.root_dir), "loop/dvc.yaml")


def test_own_stages_run_in_dependency_order_whatever_the_file_order(repo):
    add(
        repo,
        "chain/dvc.yaml",
        "stages:\n"
        "  last:\n    cmd: echo\n    deps: [mid/part]\n    outs: [end.txt]\n"
        "  first:\n    cmd: echo\n    deps: [../raw]\n    outs: [mid]\n"
        "  second:\n    cmd: echo\n    deps: [mid, ../data/prepared]\n    outs: [other.txt]\n",
    )
    g = graph.load(Path(repo.root_dir), "chain/dvc.yaml")
    assert g.stages.index("chain/dvc.yaml:first") == 0
    assert set(g.stages) == {f"chain/dvc.yaml:{s}" for s in ("first", "second", "last")}
    assert g.inputs == ["raw", "data/prepared"]
    # what a teammate may change under the run: the files declaring its inputs
    assert {"raw.dvc", "dvc.yaml", "dvc.lock", "chain/dvc.yaml"} <= set(g.depends_on)
