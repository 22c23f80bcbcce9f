"Multi-process launches through vlm_nb.launch: torchrun, deepspeed and accelerate workers on CPU with gloo"
import json, os, sys, time
from pathlib import Path
import pytest
from vlm_nb.launch import LaunchError, launch, rank_statuses

# Each worker all-reduces its rank+1 three times, rank 0 prints progress lines, every rank prints its result.
# argv: [fail_rank] [pause_s]; the failing rank raises after the collectives, before a final barrier.
WORKER = r'''
import os, sys, time, torch, torch.distributed as dist
from vlm_nb.launch import distributed_session, progress_line
fail_rank = int(sys.argv[1]) if len(sys.argv) > 1 else -1
pause = float(sys.argv[2]) if len(sys.argv) > 2 else 0
with distributed_session(seed=0) as d:
    for step in range(1, 4):
        t = torch.tensor([float(d.rank + 1)]); dist.all_reduce(t)
        if d.main: print(progress_line(step, 3, loss=1.0 / step), flush=True)
    print(f"result rank={d.rank} world={d.world_size} sum={t.item():g} backend={d.backend} "
          f"omp={os.environ.get('OMP_NUM_THREADS')} seed={d.seed}", flush=True)
    if d.rank == fail_rank:
        for i in range(30): print(f"noise {i}", flush=True)
        print("about to fail", flush=True)
        raise RuntimeError(f"deliberate failure on rank {d.rank}")
    time.sleep(pause)
    dist.barrier()
print(f"rank {d.rank} finished", flush=True)
'''

@pytest.fixture
def worker(tmp_path):
    p = tmp_path/'tiny_worker.py'; p.write_text(WORKER); return p

def _check_ok(res, world=2):
    out = res.output
    for r in range(world):
        assert f"[rank{r}] result rank={r} world={world} sum={world*(world+1)//2} backend=gloo omp=1" in out
        assert f"[rank{r}] rank {r} finished" in out
    assert [h['step'] for h in res.history] == [1, 2, 3] and res.history[-1]['loss'] == pytest.approx(1/3, rel=1e-5)
    st = rank_statuses(res.log_dir)
    assert sorted(st) == list(range(world)) and all(s['returncode'] == 0 for s in st.values())
    seeds = {int(l.split('seed=')[1]) for l in out.splitlines() if ' result rank=' in l}
    assert len(seeds) == world  # each rank got its own seed

@pytest.mark.timeout(300)
def test_torchrun_two_cpu_workers_stream_and_return(worker, tmp_path, capsys):
    seen = []
    t0 = time.time()
    res = launch([-1, 2.0], script=str(worker), launcher='torchrun', nproc_per_node=2, device='cpu',
                 log_dir=tmp_path/'logs', progress=False, on_line=lambda r, l: seen.append((time.time(), r, l)))
    t1 = time.time()
    _check_ok(res)
    printed = capsys.readouterr().out
    assert "[rank1] result rank=1 world=2" in printed and "[rank0] result rank=0 world=2" in printed
    # streamed live: the result lines arrived while rank 0 and 1 still paused for 2 s before the barrier
    got = [t for t, r, l in seen if l.startswith('result rank=')]
    assert len(got) == 2 and t1 - max(got) > 1.5
    assert res.argv[1:3] == ['-m', 'torch.distributed.run']
    print(f"torchrun 2 workers: {t1 - t0:.1f} s", file=sys.stderr)

@pytest.mark.timeout(300)
def test_failing_rank_raises_with_its_last_lines(worker, tmp_path):
    t0 = time.time()
    with pytest.raises(LaunchError) as ei:
        launch([1], script=str(worker), launcher='torchrun', nproc_per_node=2, device='cpu',
               log_dir=tmp_path/'logs', progress=False, echo='none')
    e = ei.value
    msg = str(e)
    assert e.rank == 1 and e.returncode != 0
    assert 'rank 1 failed' in msg and 'RuntimeError: deliberate failure on rank 1' in msg
    assert 'about to fail' in msg and len(e.tail) == 20
    assert 'noise 29' in msg and 'noise 5' not in msg  # only the last 20 lines of that rank
    assert e.log_path == tmp_path/'logs'/'rank1.log'
    st = rank_statuses(tmp_path/'logs')
    assert st[1]['returncode'] != 0 and st[1]['error']['type'] == 'RuntimeError'
    assert 'rank 0 finished' not in (tmp_path/'logs'/'rank0.log').read_text()
    print(f"torchrun failing rank: {time.time() - t0:.1f} s", file=sys.stderr)

@pytest.mark.timeout(300)
def test_deepspeed_launcher_two_cpu_workers(worker, tmp_path):
    t0 = time.time()
    res = launch([], script=str(worker), launcher='deepspeed', nproc_per_node=2, device='cpu',
                 log_dir=tmp_path/'logs', progress=False, echo='none')
    _check_ok(res)
    assert res.argv[1:3] == ['-m', 'deepspeed.launcher.runner']
    print(f"deepspeed 2 workers: {time.time() - t0:.1f} s", file=sys.stderr)

@pytest.mark.timeout(300)
def test_accelerate_launcher_two_cpu_workers(worker, tmp_path):
    t0 = time.time()
    res = launch([], script=str(worker), launcher='accelerate', nproc_per_node=2, device='cpu',
                 log_dir=tmp_path/'logs', progress=False, echo='none')
    _check_ok(res)
    assert '--multi_gpu' in res.argv
    print(f"accelerate 2 workers: {time.time() - t0:.1f} s", file=sys.stderr)

@pytest.mark.timeout(120)
def test_timeout_stops_the_whole_tree(tmp_path):
    import psutil
    s = tmp_path/'sleepy.py'
    s.write_text("import os, time\nprint('pid', os.getpid(), flush=True)\ntime.sleep(120)\n")
    pids = []
    t0 = time.time()
    with pytest.raises(LaunchError, match='timed out after 3 s'):
        launch([], script=str(s), launcher='none', device='cpu', timeout_s=3, log_dir=tmp_path/'logs', progress=False,
               echo='none', on_line=lambda r, l: pids.extend([int(l.split()[1])] if l.startswith('pid ') else []))
    assert time.time() - t0 < 60 and len(pids) == 1
    time.sleep(0.5)
    assert not psutil.pid_exists(pids[0]) or psutil.Process(pids[0]).status() == psutil.STATUS_ZOMBIE

def test_tee_usage_error_is_clear(tmp_path):
    import subprocess
    r = subprocess.run([sys.executable, '-m', 'vlm_nb.launch', '--oops'], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and 'usage: python -m vlm_nb.launch --log-dir DIR' in r.stderr

@pytest.mark.timeout(300)
def test_two_nodes_by_torchrun_rendezvous(worker, tmp_path, backend='c10d'):
    "Two 'nodes' on this machine, one worker each, meet through torchrun's rendezvous arguments"
    import threading
    from vlm_nb.launch import free_port
    port, res = free_port(), {}
    def node(i):
        try: res[i] = launch([], script=str(worker), nproc_per_node=1, nnodes=2, node_rank=i, rdzv_backend=backend,
                             rdzv_endpoint=f'127.0.0.1:{port}', rdzv_id='job-x', device='cpu', log_dir=tmp_path/'logs',
                             progress=False, echo='none', timeout_s=240)
        except Exception as e: res[i] = e
    t0 = time.time()
    ts = [threading.Thread(target=node, args=(i,)) for i in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert all(not isinstance(r, Exception) for r in res.values()), res
    assert '--rdzv-endpoint' in res[0].argv and f'127.0.0.1:{port}' in res[0].argv
    out = res[0].output + res[1].output
    for r in range(2): assert f"[rank{r}] result rank={r} world=2 sum=3 backend=gloo" in out
    assert sorted(rank_statuses(tmp_path/'logs')) == [0, 1]
    assert {p.name for p in (tmp_path/'logs').glob('launcher-node*.log')} == {'launcher-node0.log', 'launcher-node1.log'}
    print(f"torchrun 2 nodes x 1 worker ({backend}): {time.time() - t0:.1f} s", file=sys.stderr)
