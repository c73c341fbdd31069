// Runs SCXML documents in SCION (@scion-scxml/scxml), an independent SCXML interpreter, on
// virtual time, for tests/interop/test_exports.py.
//
// stdin: {"cases": [{"name", "scxml", "steps": [{"event": NAME} | {"advance": SECONDS}]}]}
// stdout: {"cases": [{"name", "error"?, "records": [RECORD, ...]}]}, one RECORD after the start
// and one after each step: {"config": [active state ids, sorted], "actions": [<log> labels in
// order], "fired": [delayed events delivered], "errors": [error.* events], "final": bool}.
//
// Every <send> goes through customSend: an event without a delay joins a FIFO delivered before
// the next step; one with a delay waits on a virtual clock ({"advance": s} delivers, in order of
// due time and then of sending, each one due by then). <cancel> removes pending sends by id.
'use strict';
const scxml = require('@scion-scxml/scxml');

function load(name, text) {
  return new Promise((resolve, reject) => {
    scxml.documentStringToModel(`${name}.scxml`, text, (err, factory) => {
      if (err) return reject(err);
      factory.prepare((err2, model) => (err2 ? reject(err2) : resolve(model)), {});
    });
  });
}

async function run(c) {
  const model = await load(c.name, c.scxml);
  let now = 0;
  let seq = 0;
  let pending = [];        // {due, seq, event}
  const immediate = [];    // events sent without a delay, in order
  let rec = null;
  const sc = new scxml.core.Statechart(model, {
    console: { log: (...args) => rec.actions.push(args.filter((a) => a !== null && a !== undefined).join(': ')) },
    customSend(event, options) {
      if ((options.delay || 0) > 0) pending.push({ due: now + Math.round(options.delay), seq: seq++, event });
      else immediate.push(event);
    },
    customCancel(sendid) {
      pending = pending.filter((p) => p.event.sendid !== sendid);
    },
  });
  sc.on('onError', (e) => rec.errors.push(`${e.name}: ${JSON.stringify(e.data)}`));
  const fresh = () => ({ config: [], actions: [], fired: [], errors: [], final: false });
  const deliver = (event) => {
    if (!sc.isFinal()) sc.gen({ name: event.name, data: event.data });
  };
  const drain = () => {
    while (immediate.length) deliver(immediate.shift());
  };
  const snapshot = () => {
    rec.config = sc.getFullConfiguration().filter((s) => !s.startsWith('$')).sort();
    rec.final = sc.isFinal();
    return rec;
  };
  const records = [];
  rec = fresh();
  sc.start();
  drain();
  records.push(snapshot());
  for (const step of c.steps) {
    rec = fresh();
    if ('event' in step) {
      deliver({ name: step.event });
      drain();
    } else {
      const until = now + Math.round(step.advance * 1000);
      for (;;) {
        const due = pending.filter((p) => p.due <= until);
        if (!due.length || sc.isFinal()) break;
        due.sort((a, b) => a.due - b.due || a.seq - b.seq);
        const next = due[0];
        pending = pending.filter((p) => p !== next);
        now = next.due;
        rec.fired.push(next.event.name);
        deliver(next.event);
        drain();
      }
      now = until;
    }
    records.push(snapshot());
  }
  return { name: c.name, records };
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const job = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const out = [];
  for (const c of job.cases) {
    try {
      out.push(await run(c));
    } catch (err) {
      out.push({ name: c.name, error: String((err && err.stack) || err) });
    }
  }
  process.stdout.write(JSON.stringify({ cases: out }) + '\n');
}

main().catch((err) => {
  process.stderr.write(String((err && err.stack) || err) + '\n');
  process.exit(1);
});
