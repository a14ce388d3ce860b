// Prometheus metrics: scraped from real prom-client registries (and from fastify-metrics' /metrics),
// checked against stats(); closes by code and cross-node request durations between two real nodes.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { describe, test } from 'node:test'
import { promisify } from 'node:util'
import Fastify from 'fastify'
import fastifyMetrics from 'fastify-metrics'
import promClient from 'prom-client'
import wsHub from '../dist/lib/index.js'
import { build, connect, until } from './helpers.js'
import { startRedis } from './redis-server.js'

/** The samples of a registry, as { 'name{labels}': value }. */
async function scrape (registry) {
  const samples = {}
  for (const metric of await registry.getMetricsAsJSON()) {
    for (const { value, labels, metricName } of metric.values) {
      const shown = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',')
      samples[`${metricName ?? metric.name}${shown ? `{${shown}}` : ''}`] = value
    }
  }
  return samples
}

function echo (app) {
  app.wsRoute('/echo/:room', async conn => {
    await conn.join(conn.params.room)
    for await (const message of conn) await conn.send(message)
  })
}

describe('metrics: { registry }', () => {
  test('gauges and counters agree with stats()', async t => {
    const registry = new promClient.Registry()
    const app = await build(t, echo, { metrics: { registry }, backpressure: { limit: 1, action: 'drop' } })
    const a = await connect(t, app, '/echo/one')
    const b = await connect(t, app, '/echo/two')
    a.send('hello')
    b.send(Buffer.from('bytes!'))
    assert.equal(await a.next(), 'hello')
    assert.deepEqual(await b.next(), Buffer.from('bytes!'))
    await until(() => app.ws.stats().messagesOut === 2)

    const stats = app.ws.stats()
    const samples = await scrape(registry)
    assert.equal(samples.wshub_connections, 2)
    assert.equal(samples.wshub_rooms, 2)
    assert.equal(samples.wshub_messages_in_total, stats.messagesIn)
    assert.equal(samples.wshub_messages_out_total, stats.messagesOut)
    assert.equal(samples.wshub_bytes_in_total, stats.bytesIn)
    assert.equal(samples.wshub_bytes_out_total, stats.bytesOut)
    assert.equal(samples.wshub_dropped_total, stats.dropped)
    assert.equal(samples.wshub_rate_limited_total, stats.rateLimited)
    assert.equal(samples.wshub_closed_for_backpressure_total, stats.closedForBackpressure)
    assert.equal(stats.messagesIn, 2)
    assert.equal(samples.wshub_redis_up, undefined, 'no redis_up without Redis')

    // Counters keep counting between scrapes, and the text format is what Prometheus reads.
    a.send('again')
    assert.equal(await a.next(), 'again')
    await until(() => app.ws.stats().messagesOut === 3)
    const again = await scrape(registry)
    assert.equal(again.wshub_messages_in_total, 3)
    assert.equal(again.wshub_messages_out_total, 3)
    assert.match(await registry.metrics(), /^wshub_messages_in_total 3$/m)
    assert.match(await registry.metrics(), /^# TYPE wshub_messages_in_total counter$/m)
  })

  test('closed_total counts closes by code', async t => {
    const registry = new promClient.Registry()
    const app = await build(t, app => {
      echo(app)
      app.wsRoute('/kick', async conn => { await conn.close(4001, 'kicked') })
    }, { metrics: { registry } })
    const a = await connect(t, app, '/echo/x')
    const b = await connect(t, app, '/echo/x')
    await until(() => app.ws.size === 2)
    a.close(1000)
    b.close(4000)
    const kicked = await connect(t, app, '/kick')
    assert.equal((await kicked.closed).code, 4001)
    await until(() => app.ws.size === 0)
    const samples = await scrape(registry)
    assert.equal(samples['wshub_closed_total{code="1000"}'], 1)
    assert.equal(samples['wshub_closed_total{code="4000"}'], 1)
    assert.equal(samples['wshub_closed_total{code="4001"}'], 1)
    assert.equal(samples.wshub_connections, 0)
  })

  test('the metrics leave the registry on app.close()', async t => {
    const registry = new promClient.Registry()
    const app = Fastify()
    await app.register(wsHub, { metrics: { registry } })
    await app.ready()
    assert.ok(registry.getSingleMetric('wshub_connections'))
    await app.close()
    assert.equal(registry.getSingleMetric('wshub_connections'), undefined)
    assert.equal((await registry.getMetricsAsJSON()).length, 0)
  })

  test('a registry that is not one fails register with WSHUB_ERR_INVALID_OPTION', async () => {
    for (const metrics of [{}, { registry: {} }, 'yes', 1]) {
      const app = Fastify()
      await assert.rejects(app.register(wsHub, { metrics }).ready(), { code: 'WSHUB_ERR_INVALID_OPTION', message: /"metrics"/ })
      await app.close()
    }
  })
})

describe('metrics across nodes', () => {
  test('cross_node_request_seconds times calls about another node\'s connections; redis_up is 1', async t => {
    const redis = await startRedis(t)
    const registry = new promClient.Registry()
    const a = await build(t, echo, { redis: redis.url, metrics: { registry } })
    const b = await build(t, echo, { redis: redis.url })
    await connect(t, b, '/echo/remote')
    await until(() => b.ws.size === 1)
    const [id] = await b.ws.members('remote')
    assert.equal(await a.ws.send(id, 'from a'), true)
    assert.equal(await a.ws.has(id), true)
    const samples = await scrape(registry)
    assert.equal(samples['wshub_cross_node_request_seconds_count{op="send"}'], 1)
    assert.equal(samples['wshub_cross_node_request_seconds_count{op="has"}'], 1)
    assert.ok(samples['wshub_cross_node_request_seconds_sum{op="send"}'] > 0)
    assert.equal(samples.wshub_redis_up, 1)
  })
})

describe('metrics: true', () => {
  test('with fastify-metrics registered, the metrics are in its registry and on its /metrics', async t => {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(fastifyMetrics, { endpoint: '/metrics', defaultMetrics: { enabled: false }, routeMetrics: { enabled: false } })
    await app.register(wsHub, { metrics: true })
    echo(app)
    await app.listen({ port: 0, host: '127.0.0.1' })
    const client = await connect(t, app, '/echo/r')
    client.send('m')
    assert.equal(await client.next(), 'm')
    assert.ok(app.metrics.client.register.getSingleMetric('wshub_connections'), 'in app.metrics.client.register')
    const text = await (await fetch(`http://127.0.0.1:${app.server.address().port}/metrics`)).text()
    assert.match(text, /^wshub_connections 1$/m)
    assert.match(text, /^wshub_messages_in_total 1$/m)
    assert.match(text, /^wshub_messages_out_total 1$/m)
  })

  test('without fastify-metrics, in prom-client\'s default registry', async t => {
    const app = await build(t, echo, { metrics: true })
    await connect(t, app, '/echo/r')
    await until(() => app.ws.size === 1)
    const samples = await scrape(promClient.register)
    assert.equal(samples.wshub_connections, 1)
    await app.close()
    assert.equal(promClient.register.getSingleMetric('wshub_connections'), undefined)
  })

  test('without prom-client installed, register fails with WSHUB_ERR_MISSING_PACKAGE naming it', async () => {
    // A child process whose module resolution refuses prom-client, as an app that never installed it.
    const hooks = `export async function resolve (specifier, context, next) {
      if (specifier === 'prom-client') throw Object.assign(new Error('Cannot find package prom-client'), { code: 'ERR_MODULE_NOT_FOUND' })
      return next(specifier, context)
    }`
    const script = `
      import { register } from 'node:module'
      register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hooks)}))
      const { default: Fastify } = await import('fastify')
      const { default: wsHub } = await import(${JSON.stringify(new URL('../dist/lib/index.js', import.meta.url).href)})
      const app = Fastify()
      try { await app.register(wsHub, { metrics: true }); console.log('registered') } catch (err) { console.log(err.code + ': ' + err.message) }
      await app.close()
      const plain = Fastify()
      await plain.register(wsHub)
      await plain.close()
      console.log('without metrics: fine')
    `
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('..', import.meta.url).pathname })
    assert.match(stdout, /^WSHUB_ERR_MISSING_PACKAGE: The "metrics" option needs the optional package prom-client, which is not installed: add it to your dependencies$/m)
    assert.match(stdout, /^without metrics: fine$/m)
  })
})
