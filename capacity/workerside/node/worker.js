#!/usr/bin/env node
// capacity's reference BullMQ worker: what capacity/workerside/reference.py is for Celery.
//
//   node worker.js --queue NAME --concurrency 4 [--redis redis://127.0.0.1:6379/0] [--prefix bull]
//                  [--limiter-max 100 --limiter-duration 60000] [--job-types FILE.json]
//                  [--remove-on-complete] [--record FILE.jsonl]
//
// Each job's data: {file, size_bytes, cpu_s, sleep_s, memory_bytes} or {job_type, time_scale,
// memory_scale} (ranges from --job-types, written by capacity from the profiles). It reads the
// payload file when it is local, holds memory_bytes, spins cpu_s, sleeps sleep_s. --record writes
// one line per job with the worker's own start and end (ms), to check BullMQ's timestamps against.
// Redis from --redis, else REDIS_URL, else seed 002's REDIS_HOST/REDIS_PORT.
'use strict';
const fs = require('fs');
const { Worker } = require('bullmq');

function options(argv) {
  const found = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}`);
    const name = arg.slice(2);
    if (name === 'remove-on-complete') { found[name] = true; continue; }
    if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
    found[name] = argv[++i];
  }
  return found;
}

function connection(url) {
  const parsed = new URL(url);
  return {
    host: parsed.hostname || '127.0.0.1',
    port: Number(parsed.port || 6379),
    password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
    username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
    db: Number((parsed.pathname || '/0').slice(1) || 0),
    tls: parsed.protocol === 'rediss:' ? {} : undefined,
    maxRetriesPerRequest: null, // BullMQ workers require it
  };
}

const uniform = ([low, high]) => low + Math.random() * (high - low);

function plan(data, jobTypes) {
  if (!data.job_type) {
    return { cpu_s: Number(data.cpu_s || 0), sleep_s: Number(data.sleep_s || 0), memory_bytes: Number(data.memory_bytes || 0) };
  }
  const type = jobTypes[String(data.job_type).toLowerCase()];
  if (!type) throw new Error(`unknown job type ${data.job_type}; known: ${Object.keys(jobTypes).join(', ')} (--job-types)`);
  const duration = uniform(type.duration) * Number(data.time_scale || 1);
  const cpuShare = Math.min(1, uniform(type.cpu));
  return { cpu_s: duration * cpuShare, sleep_s: duration * (1 - cpuShare), memory_bytes: uniform(type.memory) * Number(data.memory_scale || 1) };
}

async function processJob(job, jobTypes, record) {
  const startedMs = Date.now();
  const data = job.data || {};
  const { cpu_s, sleep_s, memory_bytes } = plan(data, jobTypes);
  let read = 0;
  if (data.file && !String(data.file).startsWith('s3://') && fs.existsSync(data.file)) {
    read = fs.readFileSync(data.file).length;
  }
  const held = Buffer.alloc(Math.floor(memory_bytes), 1); // filled: resident
  const deadline = process.cpuUsage();
  const spinUntil = (deadline.user + deadline.system) / 1e6 + cpu_s;
  while (true) {
    const used = process.cpuUsage();
    if ((used.user + used.system) / 1e6 >= spinUntil) break;
  }
  if (sleep_s > 0) await new Promise((resolve) => setTimeout(resolve, sleep_s * 1000));
  const finishedMs = Date.now();
  if (record) fs.appendFileSync(record, JSON.stringify({ id: job.id, started_ms: startedMs, finished_ms: finishedMs }) + '\n');
  return { read_bytes: read, held: held.length, cpu_s, sleep_s };
}

function main() {
  const opts = options(process.argv.slice(2));
  const queue = opts.queue || process.env.QUEUE_NAME || 'capacity';
  const redisUrl = opts.redis || process.env.REDIS_URL
    || `redis://${process.env.REDIS_HOST || '127.0.0.1'}:${process.env.REDIS_PORT || 6379}/0`;
  const concurrency = Number(opts.concurrency || process.env.WORKER_CONCURRENCY || 1);
  const jobTypes = {};
  if (opts['job-types']) {
    for (const [name, type] of Object.entries(JSON.parse(fs.readFileSync(opts['job-types'], 'utf8')))) jobTypes[name.toLowerCase()] = type;
  }
  const settings = { connection: connection(redisUrl), concurrency, prefix: opts.prefix || 'bull' };
  if (opts['limiter-max']) settings.limiter = { max: Number(opts['limiter-max']), duration: Number(opts['limiter-duration'] || 1000) };
  if (opts['remove-on-complete']) settings.removeOnComplete = { count: 0 };
  const worker = new Worker(queue, (job) => processJob(job, jobTypes, opts.record), settings);
  worker.on('error', (error) => console.error(`worker error: ${error.message}`));
  worker.on('failed', (job, error) => console.error(`job ${job && job.id} failed: ${error.message}`));
  worker.waitUntilReady().then(() => {
    const limiter = settings.limiter ? `, limiter ${settings.limiter.max}/${settings.limiter.duration} ms` : '';
    console.log(`capacity-node-worker ready: queue ${queue}, concurrency ${concurrency}${limiter}`);
  });
  let closing = false;
  const stop = async () => {
    if (closing) return;
    closing = true;
    // lets the jobs in hand finish; a worker that cannot reach Redis any more must still go
    setTimeout(() => process.exit(1), 15000).unref();
    await worker.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
