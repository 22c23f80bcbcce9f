"""Check a built docs site in headless Chromium (Debian's `chromium`), driven over the DevTools protocol.

`python docs/check.py docs/_build/html --shots /tmp/shots` serves the site on localhost and checks that every page loads
without console errors, every image loads, every internal link (API entries, `[source]` links) resolves, every API
entry links to its source, and the search box finds a function by name; it saves screenshots of the index and of one
study page. `tests/test_docs.py` runs the same checks on a reduced build."""
from __future__ import annotations
import argparse, base64, contextlib, functools, http.server, json, os, shutil, subprocess, sys, tempfile, threading, time
import urllib.parse, urllib.request
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM_NAMES = ('chromium', 'chromium-browser', 'google-chrome', 'chrome')
INSTALL_HINT = "install Debian's chromium package: apt-get install -y chromium (.ci/run does)"

def find_chromium() -> str:
    "Path of a Chromium binary, or an error that says how to install one"
    for n in ([os.environ['CHROMIUM']] if os.environ.get('CHROMIUM') else []) + list(CHROMIUM_NAMES):
        p = shutil.which(n)
        if p: return p
    raise FileNotFoundError(f"no headless browser found ({', '.join(CHROMIUM_NAMES)}): {INSTALL_HINT}")

# ------------------------------------------------------------------------------------------------------ serving
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass

@contextlib.contextmanager
def serve(root:Path):
    "Serve `root` on localhost; yields the base URL"
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(root)))
    t = threading.Thread(target=srv.serve_forever, daemon=True); t.start()
    try: yield f"http://127.0.0.1:{srv.server_address[1]}/"
    finally: srv.shutdown(); srv.server_close()

# ------------------------------------------------------------------------------------------------------ DevTools
class Page:
    "One browser tab over the DevTools protocol: commands, and the console errors it has seen"
    def __init__(self, ws_url:str):
        import websocket
        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.n, self.events = 0, []
        for m in ('Page.enable', 'Runtime.enable', 'Log.enable', 'Network.enable'): self.send(m)
        self.send('Emulation.setDeviceMetricsOverride', width=1280, height=900, deviceScaleFactor=1, mobile=False)

    def send(self, method:str, timeout:float=60, **params):
        self.n += 1; mid = self.n
        self.ws.send(json.dumps(dict(id=mid, method=method, params=params)))
        end = time.time() + timeout
        while time.time() < end:
            msg = json.loads(self.ws.recv())
            if msg.get('id') == mid:
                if 'error' in msg: raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get('result', {})
            if 'method' in msg: self.events.append(msg)
        raise TimeoutError(method)

    def pump(self, secs:float):
        "Read events for `secs` seconds"
        end = time.time() + secs
        self.ws.settimeout(0.05)
        try:
            while time.time() < end:
                try: self.events.append(json.loads(self.ws.recv()))
                except Exception as e:
                    if type(e).__name__ != 'WebSocketTimeoutException': raise
        finally: self.ws.settimeout(60)

    def navigate(self, url:str, timeout:float=30):
        "Load `url` and wait for its load event; returns the console errors it produced"
        self.events = []
        self.send('Page.navigate', url=url)
        end = time.time() + timeout
        while time.time() < end and not any(e.get('method') == 'Page.loadEventFired' for e in self.events): self.pump(0.1)
        if time.time() >= end: return [f"no load event within {timeout} s"]
        self.pump(0.3)  # late script errors
        return self.errors()

    def errors(self) -> list[str]:
        res = []
        for e in self.events:
            m, p = e.get('method'), e.get('params', {})
            if m == 'Runtime.exceptionThrown':
                d = p['exceptionDetails']; res.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
            elif m == 'Runtime.consoleAPICalled' and p.get('type') in ('error', 'assert'):
                res.append('console.error: ' + ' '.join(str(a.get('value', a.get('description', ''))) for a in p.get('args', [])))
            elif m == 'Log.entryAdded' and p['entry'].get('level') == 'error':
                res.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif m == 'Network.responseReceived' and p['response'].get('status', 200) >= 400:
                res.append(f"HTTP {p['response']['status']}: {p['response']['url']}")
            elif m == 'Network.loadingFailed' and not p.get('canceled'):
                res.append(f"failed to load: {p.get('errorText')} (request {p.get('requestId')})")
        return res

    def eval(self, expr:str, timeout:float=30):
        r = self.send('Runtime.evaluate', timeout=timeout, expression=expr, awaitPromise=True, returnByValue=True)
        if 'exceptionDetails' in r: raise RuntimeError(f"{expr[:80]}: {r['exceptionDetails']}")
        return r['result'].get('value')

    def wait_for(self, expr:str, timeout:float=20, every:float=0.25):
        "Poll `expr` until it is truthy; return its last value"
        end, v = time.time() + timeout, None
        while time.time() < end:
            v = self.eval(expr)
            if v: return v
            self.pump(every)
        return v

    def screenshot(self, path:Path, full:bool=True, max_height:int=5000):
        if full:
            h = int(self.send('Page.getLayoutMetrics')['cssContentSize']['height'])
            self.send('Emulation.setDeviceMetricsOverride', width=1280, height=max(600, min(h, max_height)), deviceScaleFactor=1, mobile=False)
        data = self.send('Page.captureScreenshot', format='png')['data']
        self.send('Emulation.setDeviceMetricsOverride', width=1280, height=900, deviceScaleFactor=1, mobile=False)
        path.parent.mkdir(parents=True, exist_ok=True); path.write_bytes(base64.b64decode(data))
        return path

    def close(self):
        with contextlib.suppress(Exception): self.ws.close()

@contextlib.contextmanager
def chromium(timeout:float=30):
    "A headless Chromium; yields a `Page`"
    exe = find_chromium()
    prof = Path(tempfile.mkdtemp(prefix='vlm_nb_chromium_'))
    args = [exe, '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
            '--no-default-browser-check', '--disable-extensions', '--disable-background-networking', '--mute-audio',
            '--remote-debugging-port=0', '--remote-allow-origins=*', f'--user-data-dir={prof}', 'about:blank']
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    page = None
    try:
        port_file, end = prof/'DevToolsActivePort', time.time() + timeout
        while not (port_file.exists() and port_file.read_text().strip()) and time.time() < end:
            if proc.poll() is not None: raise RuntimeError(f"chromium exited ({proc.returncode}): {proc.stderr.read()[-2000:]}")
            time.sleep(0.1)
        if not port_file.exists(): raise TimeoutError(f"chromium did not open its DevTools port within {timeout} s")
        port = int(port_file.read_text().split()[0])
        req = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method='PUT')
        target = json.loads(urllib.request.urlopen(req, timeout=10).read())
        page = Page(target['webSocketDebuggerUrl'])
        yield page
    finally:
        if page: page.close()
        proc.terminate()
        try: proc.wait(10)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()
        shutil.rmtree(prof, ignore_errors=True)

# ------------------------------------------------------------------------------------------------------ the site
class _Links(HTMLParser):
    def __init__(self):
        super().__init__(); self.ids, self.hrefs, self.api, self.imgs = set(), [], [], []
        self._dt = None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get('id'): self.ids.add(a['id'])
        if a.get('name'): self.ids.add(a['name'])
        if tag == 'a' and a.get('href'): self.hrefs.append(a['href'])
        if tag == 'img' and a.get('src'): self.imgs.append(a['src'])
        if tag == 'dt' and 'sig' in (a.get('class') or '').split() and a.get('id'): self._dt = [a['id'], False]; self.api.append(self._dt)
        if tag == 'a' and self._dt is not None and '_modules/' in (a.get('href') or ''): self._dt[1] = True
    def handle_endtag(self, tag):
        if tag == 'dt': self._dt = None

def parse_site(html:Path) -> dict[str, _Links]:
    res = {}
    for p in sorted(html.rglob('*.html')):
        if '_static' in p.relative_to(html).parts: continue
        lk = _Links(); lk.feed(p.read_text(errors='replace')); res[p.relative_to(html).as_posix()] = lk
    return res

def link_problems(html:Path, pages:dict) -> list[str]:
    "Internal links whose page or anchor is missing; API entries (functions, classes, methods) without a source link"
    bad = []
    for page, lk in pages.items():
        for href in lk.hrefs:
            u = urllib.parse.urlsplit(href)
            if u.scheme or u.netloc or href.startswith(('mailto:', 'javascript:')): continue
            target = urllib.parse.urljoin(page, u.path) if u.path else page
            target = urllib.parse.unquote(target)
            if target.endswith('/'): target += 'index.html'
            if target not in pages:
                if not (html/target).exists(): bad.append(f"{page}: link to missing {target}")
                continue
            if u.fragment and urllib.parse.unquote(u.fragment) not in pages[target].ids:
                bad.append(f"{page}: link to missing anchor {target}#{u.fragment}")
        for dt_id, has_src in lk.api:
            if not has_src and not page.startswith('_modules/'): bad.append(f"{page}: API entry {dt_id} has no [source] link")
    return bad

IMAGES_JS = """(async () => {
  const imgs = [...document.images];
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; setTimeout(r, 10000); })));
  return imgs.map(i => [i.getAttribute('src'), i.naturalWidth]);
})()"""

SEARCH_JS = """(() => {
  const inp = document.querySelector('form[action*="search"] input[name="q"]');
  if (!inp) return false;
  inp.value = %s; inp.form.submit(); return true;
})()"""

RESULTS_JS = """(() => {
  const a = [...document.querySelectorAll('#search-results a, ul.search a')].map(a => [a.textContent, a.getAttribute('href')]);
  return a.length ? a : null;
})()"""

def check_site(html:Path, shots:Path|None=None, search:str='load_config', study_page:str|None=None,
               log=print) -> dict:
    "Every check on the site under `html`; returns a report with a `problems` list (empty when all passed)"
    html = Path(html)
    pages = parse_site(html)
    problems = link_problems(html, pages)
    report = dict(pages=len(pages), images=0, api_entries=sum(len(lk.api) for lk in pages.values()), shots=[], problems=problems)
    with serve(html) as base, chromium() as tab:
        for page in pages:
            errs = tab.navigate(base + page)
            problems += [f"{page}: {e}" for e in errs]
            imgs = tab.eval(IMAGES_JS) or []
            report['images'] += len(imgs)
            problems += [f"{page}: image did not load: {src}" for src, w in imgs if not w]
        # the search box: type a function's name on the index page and submit
        tab.navigate(base + 'index.html')
        if not tab.eval(SEARCH_JS % json.dumps(search)): problems.append("index.html: no search box (form with input q)")
        else:
            tab.pump(0.5)
            hits = tab.wait_for(RESULTS_JS, timeout=30) or []
            report['search_hits'] = hits[:5]
            if not any(search in (t or '') for t, h in hits): problems.append(f"search for {search!r} found no result naming it: {hits[:5]}")
            else:
                t, h = next((t, h) for t, h in hits if search in (t or ''))
                cur = tab.eval('location.href')
                errs = tab.navigate(urllib.parse.urljoin(cur, h))
                frag = urllib.parse.urlsplit(h).fragment
                if errs or (frag and not tab.eval(f"!!document.getElementById({json.dumps(urllib.parse.unquote(frag))})")):
                    problems.append(f"search hit {h} does not resolve: {errs}")
        if shots:
            for name, page in [('index', 'index.html'), ('study', study_page)]:
                if page is None: continue
                tab.navigate(base + page)
                report['shots'].append(str(tab.screenshot(Path(shots)/f"{name}.png")))
    return report

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('html', nargs='?', default=str(Path(__file__).parent/'_build'/'html'))
    ap.add_argument('--shots', help='folder for screenshots of the index and a study page')
    ap.add_argument('--study-page', help='page to screenshot as the study page (default: the first run page found)')
    ap.add_argument('--search', default='load_config')
    a = ap.parse_args(argv)
    html = Path(a.html)
    runs = [p for p in sorted(html.glob('studies/*/run/*.html')) if p.name != 'index.html']
    study = a.study_page or max(runs, key=lambda p: p.read_text().count('<img'), default=None)  # the page with most figures
    study = study.relative_to(html).as_posix() if isinstance(study, Path) else study
    t0 = time.time()
    rep = check_site(html, Path(a.shots) if a.shots else None, a.search, study)
    print(json.dumps({k: v for k, v in rep.items() if k != 'problems'}, indent=1))
    for p in rep['problems']: print('PROBLEM', p)
    print(f"{rep['pages']} pages, {rep['images']} images, {rep['api_entries']} API entries checked in {time.time()-t0:.1f} s; "
          f"{len(rep['problems'])} problems")
    return 1 if rep['problems'] else 0

if __name__ == '__main__': sys.exit(main())
