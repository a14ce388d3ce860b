import type { FastifyInstance } from 'fastify'
import type { Broker } from './broker/broker.js'
import { WSHUB_ERR_INVALID_OPTION, WSHUB_ERR_MISSING_PACKAGE } from './errors.js'
import type { Hub, HubCounters } from './hub.js'

// Prometheus metrics of a hub, with prom-client (an optional peer dependency, loaded only when
// `metrics` is set). Gauges and counters are read from the hub's own figures when the registry is
// scraped, in collect() callbacks, so the message path pays nothing for them; only closes (by code)
// and cross-node requests (their duration) are reported as they happen, through the hub's observer.

/**
 * What the `metrics` option takes as `registry`: a prom-client `Registry` (described by the members the
 * hub uses, so that the types need no prom-client installed).
 */
export interface MetricsRegistry {
  registerMetric (metric: unknown): void
  getSingleMetric (name: string): unknown
  removeSingleMetric (name: string): void
}

/** The `metrics` option: `true` for fastify-metrics' registry (or prom-client's default one), or `{ registry }`. */
export type MetricsOption = boolean | { registry: MetricsRegistry }

// The parts of prom-client (or of the client fastify-metrics exposes, which has its API) used here.
interface Collected { set? (value: number): void, inc? (value: number): void }
interface MetricConfig {
  name: string
  help: string
  registers: MetricsRegistry[]
  labelNames?: string[]
  buckets?: number[]
  collect? (this: Collected): void
}
interface PromClient {
  register: MetricsRegistry
  Registry: new () => MetricsRegistry
  Gauge: new (config: MetricConfig) => { set (value: number): void }
  Counter: new (config: MetricConfig) => { inc (labels: Record<string, string>, value?: number): void }
  Histogram: new (config: MetricConfig) => { observe (labels: Record<string, string>, value: number): void }
}

const PREFIX = 'wshub_'

/** The counters, by metric name, and the `stats()` figure each reports. */
const COUNTERS: ReadonlyArray<[string, keyof HubCounters, string]> = [
  ['messages_in_total', 'messagesIn', 'Messages received from clients on this node'],
  ['messages_out_total', 'messagesOut', 'Messages written to clients on this node (one per recipient)'],
  ['bytes_in_total', 'bytesIn', 'Payload bytes received from clients on this node'],
  ['bytes_out_total', 'bytesOut', 'Payload bytes written to clients on this node'],
  ['dropped_total', 'dropped', 'Outgoing messages dropped for a client over the backpressure limit'],
  ['closed_for_backpressure_total', 'closedForBackpressure', 'Connections closed with 1013 for backpressure'],
  ['rate_limited_total', 'rateLimited', 'Incoming messages over the rate limit']
]

/** Checks the `metrics` option. */
export function metricsOption (value: unknown): MetricsOption {
  if (value === undefined || value === false) return false
  if (value === true) return true
  const registry = (value as { registry?: Partial<MetricsRegistry> } | null)?.registry
  if (typeof value !== 'object' || value === null || typeof registry?.registerMetric !== 'function' ||
    typeof registry.removeSingleMetric !== 'function' || typeof registry.getSingleMetric !== 'function') {
    throw new WSHUB_ERR_INVALID_OPTION('metrics', 'true, false or { registry } with a prom-client Registry')
  }
  return value as MetricsOption
}

async function loadPromClient (): Promise<PromClient> {
  try {
    const name = 'prom-client'
    const mod = await import(name) as { default?: PromClient } & PromClient
    return mod.default ?? mod
  } catch (cause) {
    const err = new WSHUB_ERR_MISSING_PACKAGE('metrics', 'prom-client')
    err.cause = cause
    throw err
  }
}

/**
 * Registers the hub's metrics (named `wshub_...`) in the registry the option names and removes them on
 * `app.close()`. With `true`: the registry of fastify-metrics when it is registered
 * (`app.metrics.client.register`), else prom-client's default registry.
 */
export async function installMetrics (fastify: FastifyInstance, hub: Hub, broker: Broker, option: MetricsOption): Promise<void> {
  if (option === false) return
  const fromFastifyMetrics = (fastify as unknown as { metrics?: { client?: PromClient } }).metrics?.client
  let client: PromClient
  let registry: MetricsRegistry
  if (option === true) {
    client = fromFastifyMetrics ?? await loadPromClient()
    registry = client.register
  } else {
    registry = option.registry
    // A registry of the client fastify-metrics brings gets metrics of that client; any other, prom-client's.
    client = fromFastifyMetrics !== undefined && registry instanceof fromFastifyMetrics.Registry ? fromFastifyMetrics : await loadPromClient()
  }
  const registers = [registry]
  const names: string[] = []
  const name = (short: string): string => {
    const full = PREFIX + short
    names.push(full)
    return full
  }

  const gauge = (short: string, help: string, read: () => number): unknown =>
    new client.Gauge({ name: name(short), help, registers, collect () { this.set!(read()) } })
  const counter = (short: string, help: string, key: keyof HubCounters): unknown => {
    let reported = 0
    return new client.Counter({
      name: name(short),
      help,
      registers,
      collect () {
        const value = hub.counters[key]
        if (value > reported) this.inc!(value - reported)
        reported = value
      }
    })
  }
  const collected = [
    gauge('connections', 'WebSocket connections on this node', () => hub.size),
    gauge('rooms', 'Rooms with a member on this node', () => hub.stats().rooms),
    ...COUNTERS.map(([short, key, help]) => counter(short, help, key))
  ]
  const up = broker.up
  if (up !== undefined) collected.push(gauge('redis_up', '1 while the connections to Redis are ready, else 0', () => up.call(broker) ? 1 : 0))
  const closed = new client.Counter({ name: name('closed_total'), help: 'Connections closed, by close code', labelNames: ['code'], registers })
  const requests = new client.Histogram({
    name: name('cross_node_request_seconds'),
    help: 'Duration of calls about a connection of another node (send, close, has, join, leave), by operation',
    labelNames: ['op'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers
  })
  hub.observe({
    closed (code) { closed.inc({ code: String(code) }) },
    requested (op, seconds) { requests.observe({ op }, seconds) }
  })
  fastify.addHook('onClose', async function removeMetrics () {
    for (const metric of names) registry.removeSingleMetric(metric)
  })
}
