import type { FastifyError, FastifyErrorConstructor } from '@fastify/error'
import Fastify, {
  type FastifyInstance,
  type FastifyPluginAsync,
  type FastifyReply,
  type FastifyRequest,
  type FastifyTypeProvider,
  type FastifyTypeProviderDefault
} from 'fastify'
import { type FastifyPluginAsyncTypebox, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { Cluster, Redis } from 'ioredis'
import type { IncomingHttpHeaders } from 'node:http'
import { describe, expect, test } from 'tstyche'
import wsHub, {
  CloseCode,
  fastifyWsHub,
  WebSocketDisconnect,
  WebSocketHandler,
  WSHUB_ERR_BROKER_CLOSED,
  WSHUB_ERR_INVALID_ENVELOPE,
  WSHUB_ERR_INVALID_ARGUMENT,
  WSHUB_ERR_TOO_MANY_ROOMS,
  WSHUB_ERR_REDIS_UNAVAILABLE,
  WSHUB_ERR_REQUEST_TIMEOUT,
  WSHUB_ERR_CONNECTION_CLOSED,
  WSHUB_ERR_HANDLER_CONSTRUCTED,
  WSHUB_ERR_MISSING_PACKAGE,
  WSHUB_ERR_WEBSOCKET_REGISTERED_AFTER,
  WSHUB_ERR_INVALID_HANDLER,
  WSHUB_ERR_INVALID_JSON,
  WSHUB_ERR_INVALID_OPTION,
  WSHUB_ERR_INVALID_PAYLOAD,
  WSHUB_ERR_INVALID_ROOM,
  WSHUB_ERR_NOT_ACCEPTED,
  WSHUB_ERR_UNEXPECTED_FRAME,
  WSHUB_ERR_RPC_TIMEOUT,
  WSHUB_ERR_CONNECTION_NOT_FOUND,
  WSHUB_ERR_RPC_UNAVAILABLE,
  wsHub as namedWsHub,
  type BaseConnection,
  type Broker,
  type Envelope,
  MemoryBroker,
  type Presence,
  RedisBroker,
  type RequestOp,
  type Connection,
  type ConnectionState,
  type SchemaType,
  type Hub,
  type HubStats,
  type HistoryEntry,
  type JoinResult,
  type PresenceDiff,
  type PresenceState,
  type RoomSender,
  type WsHubOptions
} from 'fastify-ws-hub'
import type * as wsHubModule from 'fastify-ws-hub'

const app = Fastify()

// Hooks declared apart from any route, typed with the default route generic (as in the README's examples).
async function authenticate (_request: FastifyRequest, _reply: FastifyReply): Promise<void> {}
async function rateLimitByIp (_request: FastifyRequest, _reply: FastifyReply): Promise<void> {}

describe('registering', () => {
  test('the plugin is exported as default, wsHub and fastifyWsHub', () => {
    expect(namedWsHub).type.toBe(wsHub)
    expect(fastifyWsHub).type.toBe(wsHub)
    expect(wsHub).type.toBe<FastifyPluginAsync<WsHubOptions>>()
  })

  test('every documented option is accepted, with its default value', async () => {
    await app.register(wsHub, {
      maxPayload: 1_048_576,
      heartbeat: { interval: 30_000 },
      backpressure: { limit: 4_194_304, action: 'close' },
      allowedOrigins: ['https://app.example'],
      redis: 'redis://127.0.0.1:6379',
      keyPrefix: 'wshub:',
      nodeTtl: 15_000,
      requestTimeout: 5_000,
      closeTimeout: 5_000,
      websocket: { options: { perMessageDeflate: false } }
    })
    expect(app.register).type.toBeCallableWith(wsHub)
    expect(app.register).type.toBeCallableWith(wsHub, {})
  })

  test('the other forms of each option', () => {
    expect(app.register).type.toBeCallableWith(wsHub, { heartbeat: false })
    expect(app.register).type.toBeCallableWith(wsHub, { heartbeat: {} })
    expect(app.register).type.toBeCallableWith(wsHub, { backpressure: { action: 'drop' } })
    expect(app.register).type.toBeCallableWith(wsHub, { backpressure: { limit: 1024 } })
    expect(app.register).type.toBeCallableWith(wsHub, {
      allowedOrigins: (origin: string | undefined) => origin === undefined || origin.endsWith('.example')
    })
    expect(app.register).type.toBeCallableWith(wsHub, { redis: true })
    expect(app.register).type.toBeCallableWith(wsHub, { redis: { host: '127.0.0.1', port: 6379 } })
    expect(app.register).type.toBeCallableWith(wsHub, { redis: new Redis({ lazyConnect: true }) })
    expect(app.register).type.toBeCallableWith(wsHub, { redis: { cluster: [{ host: '127.0.0.1', port: 7000 }], scaleReads: 'master' } })
    expect(app.register).type.toBeCallableWith(wsHub, { redis: new Cluster([{ host: '127.0.0.1', port: 7000 }], { lazyConnect: true }) })
    expect(app.register).type.toBeCallableWith(wsHub, { maxRoomsPerConnection: 100 })
    expect(app.register).type.toBeCallableWith(wsHub, { prefix: '/ws', logLevel: 'warn' })
  })

  test('the protection options: rateLimit, maxConnections, maxConnectionsPerIp', () => {
    expect(app.register).type.toBeCallableWith(wsHub, { rateLimit: { max: 100, windowMs: 1000, action: 'close' } })
    expect(app.register).type.toBeCallableWith(wsHub, { rateLimit: { max: 100 } })
    expect(app.register).type.toBeCallableWith(wsHub, { rateLimit: false })
    expect(app.register).type.toBeCallableWith(wsHub, { maxConnections: 10_000, maxConnectionsPerIp: 20 })
    expect(app.register).type.not.toBeCallableWith(wsHub, { rateLimit: { windowMs: 1000 } })
    expect(app.register).type.not.toBeCallableWith(wsHub, { rateLimit: { max: 10, action: 'ban' } })
    expect(app.register).type.not.toBeCallableWith(wsHub, { rateLimit: true })
    expect(app.register).type.not.toBeCallableWith(wsHub, { maxConnections: '10k' })
  })

  test('allowedOrigins as a function gets the origin, or undefined when there is none', () => {
    app.register(wsHub, {
      allowedOrigins: (origin) => {
        expect(origin).type.toBe<string | undefined>()
        return origin === 'https://app.example'
      }
    })
  })

  test('options of the wrong type are rejected', () => {
    expect(app.register).type.not.toBeCallableWith(wsHub, { maxPayload: '1mb' })
    expect(app.register).type.not.toBeCallableWith(wsHub, { heartbeat: true })
    expect(app.register).type.not.toBeCallableWith(wsHub, { heartbeat: 30_000 })
    expect(app.register).type.not.toBeCallableWith(wsHub, { heartbeat: { interval: '30s' } })
    expect(app.register).type.not.toBeCallableWith(wsHub, { backpressure: { action: 'explode' } })
    expect(app.register).type.not.toBeCallableWith(wsHub, { backpressure: { limit: '4mb' } })
    expect(app.register).type.not.toBeCallableWith(wsHub, { backpressure: 'close' })
    expect(app.register).type.not.toBeCallableWith(wsHub, { allowedOrigins: 'https://app.example' })
    expect(app.register).type.not.toBeCallableWith(wsHub, { allowedOrigins: [1, 2] })
    expect(app.register).type.not.toBeCallableWith(wsHub, { allowedOrigins: (origin: string) => origin === 'x' })
    expect(app.register).type.not.toBeCallableWith(wsHub, { allowedOrigins: () => 'yes' })
    expect(app.register).type.not.toBeCallableWith(wsHub, { redis: false })
    expect(app.register).type.not.toBeCallableWith(wsHub, { redis: 6379 })
    expect(app.register).type.not.toBeCallableWith(wsHub, { redis: { port: 'six' } })
    expect(app.register).type.not.toBeCallableWith(wsHub, { keyPrefix: 1 })
    expect(app.register).type.not.toBeCallableWith(wsHub, { nodeTtl: '15s' })
    expect(app.register).type.not.toBeCallableWith(wsHub, { requestTimeout: null })
    expect(app.register).type.not.toBeCallableWith(wsHub, { closeTimeout: '5s' })
    expect(app.register).type.not.toBeCallableWith(wsHub, { websocket: true })
    expect(app.register).type.not.toBeCallableWith(wsHub, { websocket: { notAnOption: true } })
  })

  test('an unknown option (a typo) is rejected', () => {
    expect(app.register).type.not.toBeCallableWith(wsHub, { maxPaylod: 1024 })
  })
})

describe('app.ws: the hub', () => {
  test('app.ws is the Hub, on the root and in every handler', () => {
    expect(app.ws).type.toBe<Hub>()
    app.get('/notify', async function (request) {
      expect(this.ws).type.toBe<Hub>()
      expect(request.server.ws).type.toBe<Hub>()
    })
  })

  test('send(id, data) and close(id, code?, reason?) resolve to a boolean', () => {
    expect(app.ws.send('id', 'text')).type.toBe<Promise<boolean>>()
    expect(app.ws.send('id', { any: ['json', 1] })).type.toBe<Promise<boolean>>()
    expect(app.ws.send('id', Buffer.from('bytes'))).type.toBe<Promise<boolean>>()
    expect(app.ws.send).type.not.toBeCallableWith(1, 'text')
    expect(app.ws.send).type.not.toBeCallableWith('id')

    expect(app.ws.close('id')).type.toBe<Promise<boolean>>()
    expect(app.ws.close('id', 4000)).type.toBe<Promise<boolean>>()
    expect(app.ws.close('id', 4000, 'bye')).type.toBe<Promise<boolean>>()
    expect(app.ws.close).type.not.toBeCallableWith('id', 'bye')
  })

  test('get(id) is synchronous and gives the local connection or undefined; has(id) is a Promise', () => {
    const conn = app.ws.get('id')
    expect(conn).type.toBe<BaseConnection | undefined>()
    if (conn !== undefined) {
      expect(conn.id).type.toBe<string>()
      expect(conn.send('hello')).type.toBe<Promise<void>>()
    }
    expect(app.ws.has('id')).type.toBe<Promise<boolean>>()
  })

  test('to(room | rooms).except(id | ids).send(data)', () => {
    expect(app.ws.to('room')).type.toBe<RoomSender>()
    expect(app.ws.to(['a', 'b'])).type.toBe<RoomSender>()
    expect(app.ws.to('room').except('id')).type.toBe<RoomSender>()
    expect(app.ws.to('room').except(['id1', 'id2']).except('id3')).type.toBe<RoomSender>()
    expect(app.ws.to('room').send('text')).type.toBe<Promise<string | undefined>>()
    expect(app.ws.to(['a', 'b']).except(['id1', 'id2']).send({ json: true })).type.toBe<Promise<string | undefined>>()
    expect(app.ws.to).type.not.toBeCallableWith(1)
    expect(app.ws.to('room').except).type.not.toBeCallableWith(1)
  })

  test('broadcast(room, data) and sendAll(data)', () => {
    expect(app.ws.broadcast('room', 'text')).type.toBe<Promise<string | undefined>>()
    expect(app.ws.sendAll(new Uint8Array(4))).type.toBe<Promise<void>>()
    expect(app.ws.broadcast).type.not.toBeCallableWith(['a', 'b'], 'text')
  })

  test('join(id, room) and leave(id, room) resolve to a boolean', () => {
    expect(app.ws.join('id', 'room')).type.toBe<Promise<boolean>>()
    expect(app.ws.leave('id', 'room')).type.toBe<Promise<boolean>>()
    expect(app.ws.join).type.not.toBeCallableWith('room')
  })

  test('roomSize(room), members(room) and rooms() are Promises', () => {
    expect(app.ws.roomSize('room')).type.toBe<Promise<number>>()
    expect(app.ws.members('room')).type.toBe<Promise<string[]>>()
    expect(app.ws.rooms()).type.toBe<Promise<string[]>>()
  })

  test('size is a read-only number', () => {
    expect(app.ws.size).type.toBe<number>()
    // @ts-expect-error Cannot assign to 'size' because it is a read-only property -- a getter
    app.ws.size = 0
  })

  test('routing() gives the counts of this node\'s per-room routing', () => {
    expect(app.ws.routing()).type.toBe<{ channels: number, received: number, idle: number }>()
  })

  test('stats() gives this node\'s figures synchronously', () => {
    expect(app.ws.stats()).type.toBe<HubStats>()
    expect(app.ws.stats()).type.toBe<{
      connections: number
      rooms: number
      messagesIn: number
      messagesOut: number
      bytesIn: number
      bytesOut: number
      dropped: number
      closedForBackpressure: number
      rateLimited: number
    }>()
  })
})

describe('presence and history', () => {
  test('presence(room) resolves with the entries by key; on/off take a diff listener', () => {
    expect(app.ws.presence('room')).type.toBe<Promise<PresenceState>>()
    expect(app.ws.on('presence', (diff) => {
      expect(diff).type.toBe<PresenceDiff>()
      expect(diff.joins).type.toBe<PresenceState>()
    })).type.toBe<Hub>()
    expect(app.ws.off('presence', () => {})).type.toBe<Hub>()
    expect(app.ws.on).type.not.toBeCallableWith('other', () => {})
  })

  test('history(room, { since, limit }) resolves with entries; the history option', async () => {
    expect(app.ws.history('room')).type.toBe<Promise<HistoryEntry[]>>()
    expect(app.ws.history('room', { since: '1-0', limit: 10 })).type.toBe<Promise<HistoryEntry[]>>()
    expect<WsHubOptions>().type.toBeAssignableFrom({ history: { size: 10, ttl: 1000, stamp: 'offset' } })
    expect<WsHubOptions>().type.toBeAssignableFrom({ history: false as const })
    expect<WsHubOptions>().type.not.toBeAssignableFrom({ history: { size: '10' } })
  })
})

describe('app.wsRoute', () => {
  test('a function handler gets a Connection whose params come from the path', () => {
    app.wsRoute('/chat/:room', async (conn) => {
      expect(conn).type.toBe<Connection<{ Params: { room: string } }>>()
      expect(conn.params).type.toBe<{ room: string }>()
      expect(conn.params).type.not.toHaveProperty('user')
    })
  })

  test('two params, and two in one segment', () => {
    app.wsRoute('/chat/:room/:user', (conn) => {
      expect(conn.params).type.toBe<{ room: string, user: string }>()
    })
    app.wsRoute('/flights/:from-:to', (conn) => {
      expect(conn.params).type.toBe<{ from: string, to: string }>()
    })
  })

  test('a regex param is named without its pattern', () => {
    app.wsRoute('/a/:id(^\\d+)', (conn) => {
      expect(conn.params).type.toBe<{ id: string }>()
    })
    app.wsRoute('/a/:id(^\\d+)/b/:name', (conn) => {
      expect(conn.params).type.toBe<{ id: string, name: string }>()
    })
  })

  test('a wildcard is the \'*\' param', () => {
    app.wsRoute('/files/*', (conn) => {
      expect(conn.params).type.toBe<{ '*': string }>()
    })
    app.wsRoute('/files/:bucket/*', (conn) => {
      expect(conn.params).type.toBe<{ bucket: string, '*': string }>()
    })
  })

  test('an optional param may be missing', () => {
    // find-my-way matches '/opt' too, and then request.params is {} (no "id" key at all)
    app.wsRoute('/opt/:id?', (conn) => {
      expect(conn.params).type.toBe<{ id?: string }>()
    })
  })

  test('a path without params gives no params; a path only known as string gives a record', () => {
    app.wsRoute('/plain', (conn) => {
      expect<keyof typeof conn.params>().type.toBe<never>()
    })
    const path: string = '/somewhere'
    app.wsRoute(path, (conn) => {
      expect(conn.params).type.toBe<Record<string, string>>()
    })
  })

  test('without a Querystring generic the query is unknown, as in Fastify', () => {
    app.wsRoute('/chat/:room', (conn) => {
      expect(conn.query).type.toBe<unknown>()
    })
  })

  test('an explicit route generic types params, query and headers', () => {
    app.wsRoute<{ Params: { id: string }, Querystring: { token?: string }, Headers: { 'x-client': string } }>('/items/:id', (conn) => {
      expect(conn.params).type.toBe<{ id: string }>()
      expect(conn.query).type.toBe<{ token?: string }>()
      expect(conn.headers['x-client']).type.toBe<string>()
      expect(conn.request.query).type.toBe<{ token?: string }>()
    })
  })

  test('the object form, typed from url', () => {
    app.wsRoute({
      url: '/rooms/:room',
      handler: (conn) => {
        expect(conn.params).type.toBe<{ room: string }>()
      },
      preValidation: async (request) => {
        expect(request.params).type.toBe<{ room: string }>()
      },
      onRequest: [rateLimitByIp],
      schema: { querystring: { type: 'object', properties: { token: { type: 'string' } } } }
    })
  })

  test('the object form with an explicit route generic', () => {
    app.wsRoute<{ Params: { id: string }, Querystring: { token: string } }>({
      url: '/secure/:id',
      handler: (conn) => {
        expect(conn.params).type.toBe<{ id: string }>()
        expect(conn.query).type.toBe<{ token: string }>()
      }
    })
  })

  test('route options: hooks see the typed request; hooks declared apart are accepted', () => {
    app.wsRoute('/secure/:id', (conn) => { expect(conn.params.id).type.toBe<string>() }, {
      preValidation: async (request, reply) => {
        expect(request.params).type.toBe<{ id: string }>()
        expect(reply).type.toBeAssignableTo<FastifyReply>()
      },
      schema: { querystring: { type: 'object', properties: { token: { type: 'string' } } } },
      config: { rateLimit: false },
      logLevel: 'warn'
    })
    expect(app.wsRoute).type.toBeCallableWith('/secure', () => {}, { preValidation: authenticate })
    expect(app.wsRoute).type.toBeCallableWith({ url: '/secure', handler: () => {}, onRequest: [rateLimitByIp] })
  })

  test('route options that make no sense on a ws route are rejected', () => {
    expect(app.wsRoute).type.not.toBeCallableWith('/x', () => {}, { websocket: true })
    expect(app.wsRoute).type.not.toBeCallableWith('/x', () => {}, { wsHandler: () => {} })
    expect(app.wsRoute).type.not.toBeCallableWith('/x', () => {}, { handler: () => {} })
    expect(app.wsRoute).type.not.toBeCallableWith({ url: '/x', method: 'POST', handler: () => {} })
    expect(app.wsRoute).type.not.toBeCallableWith({ url: '/x' })
    expect(app.wsRoute).type.not.toBeCallableWith({ handler: () => {} })
    expect(app.wsRoute).type.not.toBeCallableWith('/x', () => {}, { preValidation: 'authenticate' })
  })

  test('a handler that is neither a function nor a WebSocketHandler class is rejected', () => {
    expect(app.wsRoute).type.not.toBeCallableWith('/x', 'handler')
    expect(app.wsRoute).type.not.toBeCallableWith('/x', {})
    expect(app.wsRoute).type.not.toBeCallableWith('/x')
    expect(app.wsRoute).type.not.toBeCallableWith(42, () => {})
  })

  test('the return value is the instance, so calls chain', () => {
    expect(app.wsRoute('/a', () => {})).type.toBe<FastifyInstance>()
    expect(app.wsRoute({ url: '/b', handler: () => {} })).type.toBe<FastifyInstance>()
    expect(app.wsRoute('/c', () => {}).wsRoute('/d', () => {}).get('/e', async () => 'e')).type.toBe<FastifyInstance>()

    interface StringProvider extends FastifyTypeProvider { readonly validator: string, readonly serializer: string }
    const typed = app.withTypeProvider<StringProvider>()
    expect(typed.wsRoute('/f', () => {})).type.toBe(typed.get('/g', async () => 'g'))
    expect(typed.wsRoute('/f', () => {})).type.not.toBe<FastifyInstance>()
  })

  test('inside an encapsulated plugin with a prefix', () => {
    app.register(async (child) => {
      expect(child.ws).type.toBe<Hub>()
      const result = child.wsRoute('/:room', (conn) => {
        expect(conn.params).type.toBe<{ room: string }>()
        expect(conn.hub).type.toBe<Hub>()
      })
      expect(result).type.toBe<typeof child>()
    }, { prefix: '/chat' })

    const routes: FastifyPluginAsync = async (fastify) => {
      fastify.wsRoute('/book/:id', (conn) => {
        expect(conn.params).type.toBe<{ id: string }>()
      }, { onRequest: authenticate })
    }
    expect(app.register).type.toBeCallableWith(routes, { prefix: '/ws' })
  })
})

describe('the connection', () => {
  test('its properties', () => {
    app.wsRoute('/chat/:room', (conn) => {
      expect(conn.id).type.toBe<string>()
      expect(conn.request).type.toBe<FastifyRequest<{ Params: { room: string } }>>()
      expect(conn.params).type.toBe<{ room: string }>()
      expect(conn.query).type.toBe<unknown>()
      expect(conn.headers).type.toBe<IncomingHttpHeaders>()
      expect(conn.path).type.toBe<string>()
      expect(conn.ip).type.toBe<string>()
      expect(conn.protocol).type.toBe<string>()
      expect(conn.state).type.toBe<ConnectionState>()
      expect(conn.hub).type.toBe<Hub>()
      expect(conn.accepted).type.toBe<boolean>()
      expect(conn.closed).type.toBe<boolean>()
      expect(conn.signal).type.toBe<AbortSignal>()
      expect(conn.rooms).type.toBe<ReadonlySet<string>>()
    })
  })

  test('what is read-only stays read-only; state is the application\'s', () => {
    app.wsRoute('/chat/:room', (conn) => {
      conn.state.user = { name: 'ada' }
      conn.state = { fresh: true }
      // @ts-expect-error Cannot assign to 'id' because it is a read-only property
      conn.id = 'other'
      // @ts-expect-error Cannot assign to 'hub' because it is a read-only property
      conn.hub = app.ws
      // @ts-expect-error Cannot assign to 'closed' because it is a read-only property -- a getter
      conn.closed = true
      expect(conn.rooms).type.not.toHaveProperty('add')
      expect(conn.rooms).type.not.toHaveProperty('delete')
    })
  })

  test('accept() and the send methods resolve to void', () => {
    app.wsRoute('/chat/:room', (conn) => {
      expect(conn.accept()).type.toBe<Promise<void>>()
      expect(conn.send('text')).type.toBe<Promise<void>>()
      expect(conn.send(Buffer.from('bytes'))).type.toBe<Promise<void>>()
      expect(conn.send(new ArrayBuffer(8))).type.toBe<Promise<void>>()
      expect(conn.send(new Uint8Array(8))).type.toBe<Promise<void>>()
      expect(conn.send({ json: [1, 2] })).type.toBe<Promise<void>>()
      expect(conn.sendText('text')).type.toBe<Promise<void>>()
      expect(conn.sendBytes(Buffer.from('bytes'))).type.toBe<Promise<void>>()
      expect(conn.sendBytes(new Uint8Array(8))).type.toBe<Promise<void>>()
      expect(conn.sendBytes(new ArrayBuffer(8))).type.toBe<Promise<void>>()
      expect(conn.sendJson({ json: true })).type.toBe<Promise<void>>()
      expect(conn.sendJson('a string is JSON too')).type.toBe<Promise<void>>()

      expect(conn.send).type.not.toBeCallableWith()
      expect(conn.sendText).type.not.toBeCallableWith(Buffer.from('bytes'))
      expect(conn.sendText).type.not.toBeCallableWith({ json: true })
      expect(conn.sendBytes).type.not.toBeCallableWith('text')
      expect(conn.sendBytes).type.not.toBeCallableWith([1, 2, 3])
    })
  })

  test('bufferedAmount and drain() let a streaming handler wait for a slow reader', () => {
    app.wsRoute('/stream', async (conn) => {
      expect(conn.bufferedAmount).type.toBe<number>()
      expect(conn.drain()).type.toBe<Promise<void>>()
      // @ts-expect-error Cannot assign to 'bufferedAmount' because it is a read-only property
      conn.bufferedAmount = 0
    })
  })

  test('the receive methods', () => {
    app.wsRoute('/chat/:room', async (conn) => {
      expect(conn.receive()).type.toBe<Promise<string | Buffer>>()
      expect(conn.receiveText()).type.toBe<Promise<string>>()
      expect(conn.receiveBytes()).type.toBe<Promise<Buffer>>()
      expect(conn.receiveJson()).type.toBe<Promise<unknown>>()
      expect(conn.receiveJson<{ type: 'move', x: number }>()).type.toBe<Promise<{ type: 'move', x: number }>>()

      const message = await conn.receive()
      if (typeof message === 'string') expect(message).type.toBe<string>()
      else expect(message).type.toBe<Buffer>()
    })
  })

  test('async iteration yields string | Buffer', () => {
    app.wsRoute('/chat/:room', async (conn) => {
      for await (const message of conn) {
        expect(message).type.toBe<string | Buffer>()
      }
      expect(conn[Symbol.asyncIterator]()).type.toBe<AsyncIterableIterator<string | Buffer>>()
    })
  })

  test('close(code?, reason?)', () => {
    app.wsRoute('/chat/:room', (conn) => {
      expect(conn.close()).type.toBe<Promise<void>>()
      expect(conn.close(1000)).type.toBe<Promise<void>>()
      expect(conn.close(4001, 'kicked')).type.toBe<Promise<void>>()
      expect(conn.close(CloseCode.POLICY_VIOLATION, 'no')).type.toBe<Promise<void>>()
      expect(conn.close).type.not.toBeCallableWith('kicked')
      expect(conn.close).type.not.toBeCallableWith(1000, 42)
    })
  })

  test('rooms: join, leave, broadcast and to(room).send', () => {
    app.wsRoute('/chat/:room', async (conn) => {
      expect(conn.join(conn.params.room)).type.toBe<Promise<JoinResult>>()
      expect(conn.join(conn.params.room, { since: conn.query })).type.toBe<Promise<JoinResult>>()
      expect(conn.track('room', 'key', { name: 'Ann' })).type.toBe<Promise<void>>()
      expect(conn.track('room', 'key')).type.toBe<Promise<void>>()
      expect(conn.untrack('room', 'key')).type.toBe<Promise<void>>()
      expect(conn.track).type.not.toBeCallableWith('room', 'key', 'not an object')
      expect(conn.leave(conn.params.room)).type.toBe<Promise<void>>()
      expect(conn.join).type.not.toBeCallableWith(1)
      expect(conn.join).type.not.toBeCallableWith()
      expect(conn.broadcast('room', 'text')).type.toBe<Promise<string | undefined>>()
      expect(conn.broadcast('room', { json: true })).type.toBe<Promise<string | undefined>>()
      expect(conn.broadcast).type.not.toBeCallableWith('room')
      expect(conn.to('room')).type.toBe<RoomSender>()
      expect(conn.to('room').send('text')).type.toBe<Promise<string | undefined>>()
      expect(conn.hub.to('room').send('text')).type.toBe<Promise<string | undefined>>()

      for await (const message of conn) {
        await conn.broadcast(conn.params.room, message)
      }
    })
  })

  test('the connection of a function handler is what app.ws.get() gives back', () => {
    app.wsRoute('/chat/:room', (conn) => {
      expect(conn).type.toBeAssignableTo<BaseConnection>()
      expect(conn).type.toBeAssignableTo<NonNullable<ReturnType<Hub['get']>>>()
    })
  })
})

describe('WebSocketHandler: class handlers', () => {
  test('a subclass overriding connect, receive and disconnect is a route handler', () => {
    class BookSocket extends WebSocketHandler<{ Params: { id: string }, Querystring: { token?: string } }> {
      override async connect (params: { id: string }) {
        expect(params).type.toBe<{ id: string }>()
        expect(this.params).type.toBe<{ id: string }>()
        expect(this.query).type.toBe<{ token?: string }>()
        if (this.query.token === undefined) return
        expect(this.accept()).type.toBe<Promise<void>>()
        await this.accept()
      }

      override async receive (data: string | Buffer) {
        expect(this.send(data)).type.toBe<Promise<void>>()
        expect(this.sendText('text')).type.toBe<Promise<void>>()
        expect(this.sendJson({ json: true })).type.toBe<Promise<void>>()
        expect(this.broadcast(this.params.id, data)).type.toBe<Promise<string | undefined>>()
        expect(this.join(this.params.id)).type.toBe<Promise<JoinResult>>()
        expect(this.close(1000, 'done')).type.toBe<Promise<void>>()
        expect(this.hub).type.toBe<Hub>()
        expect(this.rooms).type.toBe<ReadonlySet<string>>()
        expect(this.request).type.toBe<FastifyRequest<{ Params: { id: string }, Querystring: { token?: string } }>>()
        expect(this.receiveText()).type.toBe<Promise<string>>()
      }

      override async disconnect (code: number, reason: string) {
        expect(code).type.toBe<number>()
        expect(reason).type.toBe<string>()
      }
    }

    expect(app.wsRoute('/ws/book/:id', BookSocket)).type.toBe<FastifyInstance>()
    expect(app.wsRoute).type.toBeCallableWith({ url: '/ws/book/:id', handler: BookSocket })
    expect(app.wsRoute).type.toBeCallableWith('/ws/book/:id', BookSocket, { preValidation: authenticate })
  })

  test('the callbacks may be synchronous, and all of them are optional', () => {
    class Echo extends WebSocketHandler {
      override receive (data: string | Buffer) {
        this.send(data).catch(() => {})
      }
    }
    class Quiet extends WebSocketHandler {}
    expect(app.wsRoute).type.toBeCallableWith('/echo', Echo)
    expect(app.wsRoute).type.toBeCallableWith('/quiet/:id', Quiet)
  })

  test('this.params of a subclass without a route generic is unknown, as request.params is', () => {
    class Plain extends WebSocketHandler {
      override connect () {
        expect(this.params).type.toBe<unknown>()
      }
    }
    expect(app.wsRoute).type.toBeCallableWith('/plain/:id', Plain)
  })

  test('overrides must keep the callbacks\' signatures', () => {
    class WrongReceive extends WebSocketHandler {
      // @ts-expect-error Property 'receive' in type 'WrongReceive' is not assignable to the same property in base type -- a message is a string or a Buffer
      override receive (_data: number) {}
    }
    class WrongConnect extends WebSocketHandler<{ Params: { id: string } }> {
      // @ts-expect-error Property 'connect' in type 'WrongConnect' is not assignable to the same property in base type -- connect() gets the route's params
      override connect (_params: { other: number }) {}
    }
    class WrongDisconnect extends WebSocketHandler {
      // @ts-expect-error Property 'disconnect' in type 'WrongDisconnect' is not assignable to the same property in base type -- the close code is a number
      override disconnect (_code: string) {}
    }
    // and wsRoute does not take them either
    expect(app.wsRoute).type.not.toBeCallableWith('/x', WrongReceive)
    expect(app.wsRoute).type.not.toBeCallableWith('/x/:id', WrongConnect)
    expect(app.wsRoute).type.not.toBeCallableWith('/x', WrongDisconnect)
  })

  test('a class that does not extend WebSocketHandler is rejected', () => {
    class LooksLikeAHandler {
      params = { id: '1' }
      async connect (_params: { id: string }) {}
      async receive (_data: string | Buffer) {}
      async disconnect (_code: number, _reason: string) {}
    }
    expect(app.wsRoute).type.not.toBeCallableWith('/ws/book/:id', LooksLikeAHandler)
    expect(app.wsRoute).type.not.toBeCallableWith({ url: '/ws/book/:id', handler: LooksLikeAHandler })
  })

  test('a subclass whose constructor needs arguments is rejected (the route constructs it without any)', () => {
    class NeedsArgs extends WebSocketHandler {
      constructor (readonly name: string) { super() }
    }
    class NoArgs extends WebSocketHandler {
      readonly name: string
      constructor () {
        super()
        this.name = 'fine'
      }
    }
    expect(app.wsRoute).type.not.toBeCallableWith('/args', NeedsArgs)
    expect(app.wsRoute).type.toBeCallableWith('/args', NoArgs)
  })

  test('a class typed for other params than its path has is rejected', () => {
    class BookSocket extends WebSocketHandler<{ Params: { id: string } }> {}
    expect(app.wsRoute).type.toBeCallableWith('/ws/book/:id', BookSocket)
    expect(app.wsRoute).type.toBeCallableWith({ url: '/ws/book/:id', handler: BookSocket })
    // at run time this.params.id would be undefined: the path names the param bookId
    expect(app.wsRoute).type.not.toBeCallableWith('/ws/book/:bookId', BookSocket)
    expect(app.wsRoute).type.not.toBeCallableWith({ url: '/ws/book/:bookId', handler: BookSocket })
  })

  test('so is a function handler annotated with other params than its path has', () => {
    const handler = (conn: Connection<{ Params: { id: string } }>) => conn.send(conn.params.id)
    expect(app.wsRoute).type.toBeCallableWith('/ws/book/:id', handler)
    expect(app.wsRoute).type.not.toBeCallableWith('/ws/book/:bookId', handler)
  })

  test('an explicit route generic may type a class handler too', () => {
    class BookSocket extends WebSocketHandler<{ Params: { id: string } }> {}
    class NotAHandler { async receive (_data: string | Buffer) {} }
    expect(app.wsRoute<{ Params: { id: string } }>('/ws/book/:id', BookSocket)).type.toBe<FastifyInstance>()
    // @ts-expect-error Argument of type 'typeof NotAHandler' is not assignable to parameter of type 'WsRouteHandler<
    app.wsRoute<{ Params: { id: string } }>('/ws/book/:id', NotAHandler)
    class RoomSocket extends WebSocketHandler<{ Params: { room: string } }> {}
    // @ts-expect-error Argument of type 'typeof RoomSocket' is not assignable to parameter of type 'WsRouteHandler<
    app.wsRoute<{ Params: { id: string } }>('/ws/book/:id', RoomSocket)
  })
})

describe('a class handler\'s connect(params) must fit its path', () => {
  test('a class without a route generic whose connect() takes other params than the path has is rejected', () => {
    class BookSocket extends WebSocketHandler {
      override async connect (params: { id: string }) {
        await this.send(params.id)
      }
    }
    expect(app.wsRoute).type.toBeCallableWith('/b/:id', BookSocket)
    expect(app.wsRoute).type.toBeCallableWith({ url: '/b/:id', handler: BookSocket })
    // at run time params.id would be undefined: the path names the param bookId
    expect(app.wsRoute).type.not.toBeCallableWith('/b/:bookId', BookSocket)
    expect(app.wsRoute).type.not.toBeCallableWith({ url: '/b/:bookId', handler: BookSocket })
  })

  test('connect() may take fewer params than the path has, or none', () => {
    class Loose extends WebSocketHandler {
      override async connect (params: { id?: string }) {
        if (params.id !== undefined) await this.accept()
      }
    }
    class NoParams extends WebSocketHandler {
      override connect () {}
    }
    expect(app.wsRoute).type.toBeCallableWith('/b/:id/:page', Loose)
    expect(app.wsRoute).type.toBeCallableWith('/b/:bookId', NoParams)
  })

  test('on a path only known as string the params cannot be checked: any connect(params) fits', () => {
    class BookSocket extends WebSocketHandler {
      override async connect (params: { id: string }) { await this.send(params.id) }
    }
    const path: string = '/b/:bookId'
    expect(app.wsRoute).type.toBeCallableWith(path, BookSocket)
  })
})

describe('the app\'s type provider', () => {
  const typed = Fastify().withTypeProvider<TypeBoxTypeProvider>()
  const Params = Type.Object({ bookId: Type.String() })
  const Query = Type.Object({ token: Type.String(), page: Type.Optional(Type.Number()) })
  const Headers = Type.Object({ 'x-tenant': Type.String() })

  test('schema.params, querystring and headers type conn.params, conn.query and conn.headers', () => {
    typed.wsRoute('/b/:bookId', (conn) => {
      expect(conn.params).type.toBe<{ bookId: string }>()
      expect(conn.query).type.toBe<{ token: string, page?: number }>()
      expect(conn.headers['x-tenant']).type.toBe<string>()
      expect(conn.request.query.token).type.toBe<string>()
    }, { schema: { params: Params, querystring: Query, headers: Headers } })
  })

  test('the hooks\' request is typed the same', () => {
    typed.wsRoute('/b/:bookId', (conn) => {
      expect(conn.query.token).type.toBe<string>()
    }, {
      schema: { querystring: Query },
      preValidation: async (request) => {
        expect(request.query).type.toBe<{ token: string, page?: number }>()
        expect(request.params).type.toBe<{ bookId: string }>()
      },
      onRequest: [authenticate]
    })
  })

  test('the object form', () => {
    typed.wsRoute({
      url: '/b/:bookId',
      schema: { querystring: Query },
      handler: (conn) => {
        expect(conn.query.page).type.toBe<number | undefined>()
        expect(conn.params).type.toBe<{ bookId: string }>()
      },
      preHandler: async (request) => {
        expect(request.query.token).type.toBe<string>()
      }
    })
  })

  test('without schema.params the path types the params; without a querystring schema the query is unknown', () => {
    typed.wsRoute('/room/:room', (conn) => {
      expect(conn.params).type.toBe<{ room: string }>()
      expect(conn.query).type.toBe<unknown>()
    })
  })

  test('a class handler typed for the schema\'s query fits; one typed for another does not', () => {
    class Reader extends WebSocketHandler<{ Params: { bookId: string }, Querystring: { token: string, page?: number } }> {
      override async connect (params: { bookId: string }) {
        if (this.query.token !== '') await this.send(params.bookId)
      }
    }
    class Other extends WebSocketHandler<{ Params: { bookId: string }, Querystring: { other: boolean } }> {}
    expect(typed.wsRoute).type.toBeCallableWith('/b/:bookId', Reader, { schema: { querystring: Query } })
    expect(typed.wsRoute).type.not.toBeCallableWith('/b/:bookId', Other, { schema: { querystring: Query } })
  })

  test('inside a plugin that keeps the type provider', () => {
    const plugin: FastifyPluginAsyncTypebox = async (instance) => {
      instance.wsRoute('/b/:bookId', (conn) => {
        expect(conn.query.token).type.toBe<string>()
      }, { schema: { querystring: Query } })
    }
    expect(typed.register).type.toBeCallableWith(plugin)
  })

  test('SchemaType is what the type provider makes of a schema', () => {
    expect<SchemaType<TypeBoxTypeProvider, typeof Params>>().type.toBe<{ bookId: string }>()
    expect<SchemaType<FastifyTypeProviderDefault, typeof Params>>().type.toBe<unknown>()
  })
})

describe('typed connections from the hub', () => {
  class ChatSocket extends WebSocketHandler<{ Params: { room: string } }> {
    nick = 'anonymous'
  }

  test('app.ws.get<T>(id) names the class', () => {
    expect(app.ws.get('id')).type.toBe<BaseConnection | undefined>()
    expect(app.ws.get<ChatSocket>('id')).type.toBe<ChatSocket | undefined>()
    expect(app.ws.get<ChatSocket>('id')?.nick).type.toBe<string | undefined>()
    expect(app.ws.get<Connection<{ Params: { room: string } }>>('id')?.params).type.toBe<{ room: string } | undefined>()
    // @ts-expect-error Type 'string' does not satisfy the constraint 'BaseConnection<RouteGenericInterface>'
    app.ws.get<string>('id')
  })

  test('state is typed by the ConnectionState interface, which an application extends', () => {
    app.wsRoute('/s', (conn) => {
      expect(conn.state).type.toBe<ConnectionState>()
      expect(conn.state.anything).type.toBe<unknown>()
    })
  })
})

describe('errors', () => {
  test('every WSHUB_ERR_ constructor is a FastifyErrorConstructor', () => {
    expect(WSHUB_ERR_INVALID_OPTION).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_INVALID_HANDLER).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_HANDLER_CONSTRUCTED).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_WEBSOCKET_REGISTERED_AFTER).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_MISSING_PACKAGE).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_INVALID_ROOM).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_CONNECTION_CLOSED).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_NOT_ACCEPTED).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_UNEXPECTED_FRAME).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_INVALID_JSON).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_INVALID_PAYLOAD).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_BROKER_CLOSED).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_REQUEST_TIMEOUT).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_REDIS_UNAVAILABLE).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_INVALID_ENVELOPE).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_RPC_TIMEOUT).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_CONNECTION_NOT_FOUND).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_RPC_UNAVAILABLE).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_INVALID_ARGUMENT).type.toBeAssignableTo<FastifyErrorConstructor>()
    expect(WSHUB_ERR_TOO_MANY_ROOMS).type.toBeAssignableTo<FastifyErrorConstructor>()
  })

  test('the list above is every WSHUB_ERR_ export (add a new error to it)', () => {
    type ErrorName = Extract<keyof typeof wsHubModule, `WSHUB_ERR_${string}`>
    expect<ErrorName>().type.toBe<
      | 'WSHUB_ERR_INVALID_OPTION'
      | 'WSHUB_ERR_INVALID_HANDLER'
      | 'WSHUB_ERR_HANDLER_CONSTRUCTED'
      | 'WSHUB_ERR_WEBSOCKET_REGISTERED_AFTER'
      | 'WSHUB_ERR_MISSING_PACKAGE'
      | 'WSHUB_ERR_INVALID_ROOM'
      | 'WSHUB_ERR_CONNECTION_CLOSED'
      | 'WSHUB_ERR_NOT_ACCEPTED'
      | 'WSHUB_ERR_UNEXPECTED_FRAME'
      | 'WSHUB_ERR_INVALID_JSON'
      | 'WSHUB_ERR_INVALID_PAYLOAD'
      | 'WSHUB_ERR_BROKER_CLOSED'
      | 'WSHUB_ERR_REQUEST_TIMEOUT'
      | 'WSHUB_ERR_REDIS_UNAVAILABLE'
      | 'WSHUB_ERR_INVALID_ENVELOPE'
      | 'WSHUB_ERR_RPC_TIMEOUT'
      | 'WSHUB_ERR_CONNECTION_NOT_FOUND'
      | 'WSHUB_ERR_RPC_UNAVAILABLE'
      | 'WSHUB_ERR_INVALID_ARGUMENT'
      | 'WSHUB_ERR_TOO_MANY_ROOMS'
    >()
  })

  test('the errors are FastifyErrors, built with their message arguments', () => {
    expect(new WSHUB_ERR_INVALID_ROOM('""')).type.toBeAssignableTo<FastifyError>()
    expect(new WSHUB_ERR_INVALID_ROOM('""')).type.toBeAssignableTo<Error>()
    expect(new WSHUB_ERR_INVALID_OPTION('maxPayload', 'expected a positive integer').code).type.toBe<'WSHUB_ERR_INVALID_OPTION'>()
    expect(new WSHUB_ERR_INVALID_ROOM('""').statusCode).type.toBe<400>()
    expect(WSHUB_ERR_INVALID_OPTION).type.toBeConstructableWith('maxPayload', 'expected a positive integer')
    expect(WSHUB_ERR_INVALID_OPTION).type.not.toBeConstructableWith(1, 2)
    expect(WSHUB_ERR_BROKER_CLOSED).type.toBeConstructableWith()
    expect(new WSHUB_ERR_REQUEST_TIMEOUT('has(a.b)', '5000').statusCode).type.toBe<504>()
    expect(WSHUB_ERR_REDIS_UNAVAILABLE).type.toBeConstructableWith('the connection to Redis is down')
  })

  test('WebSocketDisconnect carries the close code and reason', () => {
    const err = new WebSocketDisconnect(1001, 'going away')
    expect(err).type.toBeAssignableTo<Error>()
    expect(err.code).type.toBe<number>()
    expect(err.reason).type.toBe<string>()
    expect(WebSocketDisconnect).type.toBeConstructableWith(1000)
    expect(WebSocketDisconnect).type.not.toBeConstructableWith('1000')
    // @ts-expect-error Cannot assign to 'code' because it is a read-only property
    err.code = 1000
    // it is a plain Error, not a coded @fastify/error (its code is the numeric close code)
    expect(WebSocketDisconnect).type.not.toBeAssignableTo<FastifyErrorConstructor>()
  })

  test('a rejection can be told apart with instanceof', () => {
    app.wsRoute('/json', async (conn) => {
      try {
        await conn.receiveJson()
      } catch (err) {
        if (err instanceof WebSocketDisconnect) {
          expect(err.code).type.toBe<number>()
        } else if (err instanceof WSHUB_ERR_INVALID_JSON) {
          expect(err).type.toBeAssignableTo<FastifyError>()
          expect(err.code).type.toBe<'WSHUB_ERR_INVALID_JSON'>()
        }
      }
    })
  })

  test('CloseCode names the close codes', () => {
    expect(CloseCode.POLICY_VIOLATION).type.toBe<1008>()
    expect(CloseCode.INTERNAL_ERROR).type.toBe<1011>()
    // @ts-expect-error Cannot assign to 'NORMAL' because it is a read-only property -- CloseCode is frozen
    CloseCode.NORMAL = 1001
  })
})

describe('brokers', () => {
  test('MemoryBroker and RedisBroker are Brokers; RedisBroker keeps cluster-wide presence', () => {
    expect(new MemoryBroker()).type.toBeAssignableTo<Broker>()
    expect<RedisBroker>().type.toBeAssignableTo<Broker>()
    expect<RedisBroker['presence']>().type.toBeAssignableTo<Presence>()
    expect(RedisBroker).type.toBeConstructableWith('redis://127.0.0.1:6379', { keyPrefix: 'app:', nodeTtl: 15_000 })
    expect(RedisBroker).type.toBeConstructableWith(new Redis({ lazyConnect: true }))
    expect(RedisBroker).type.not.toBeConstructableWith(6379)
  })

  test('an Envelope narrows on its type', () => {
    const handle = (envelope: Envelope): void => {
      if (envelope.type === 'request') expect(envelope.op).type.toBe<RequestOp>()
      else if (envelope.type === 'reply') expect(envelope.result).type.toBe<boolean>()
      else expect(envelope.payload).type.toBe<Buffer>()
    }
    expect(handle).type.toBeCallableWith({ origin: 'n', type: 'reply', seq: 1, result: true })
  })
})
