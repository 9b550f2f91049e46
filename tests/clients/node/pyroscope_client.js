// Profile this script with the real Pyroscope Node.js client (@pyroscope/nodejs, wall and heap
// profiles through @datadog/pprof) and upload to the server given; tests/pyroscope.rs asserts on
// what stackd then shows.
//
// usage: node pyroscope_client.js <server address> <application name> <milliseconds>
const Pyroscope = require('@pyroscope/nodejs');

const [server, app, ms] = process.argv.slice(2);
Pyroscope.init({ serverAddress: server, appName: app, tags: { region: 'eu' }, flushIntervalMs: 1000 });
Pyroscope.start();

function busyWork() {
  let s = 0;
  for (let i = 0; i < 2e6; i++) s += Math.sqrt(i);
  return s;
}

const end = Date.now() + Number(ms);
(function loop() {
  busyWork();
  if (Date.now() < end) setImmediate(loop);
  else Pyroscope.stop().then(() => { console.log('done'); process.exit(0); });
})();
