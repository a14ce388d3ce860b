import { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify from 'fastify'
import { describe, expect, test } from 'tstyche'
import { Type } from 'typebox'
import wsHub, {
  RpcError,
  WSHUB_ERR_CONNECTION_NOT_FOUND,
  WSHUB_ERR_RPC_TIMEOUT,
  type BaseConnection,
  type Connection,
  type Message,
  type OnMessageHook
} from 'fastify-ws-hub'

describe('methods routes', () => {
  test('with the TypeBox type provider, a method\'s params are typed from its schema; conn from the route', async () => {
    const app = Fastify().withTypeProvider<TypeBoxTypeProvider>()
    await app.register(wsHub)
    app.wsRoute('/rpc/:room', async (conn) => { expect(conn.params.room).type.toBe<string>() }, {
      methods: {
        'chat.say': {
          schema: { params: Type.Object({ text: Type.String({ minLength: 1 }) }) },
          handler: async (params, conn) => {
            expect(params).type.toBe<{ text: string }>()
            expect(conn.params.room).type.toBe<string>()
            return { ok: true }
          }
        },
        sum: { schema: { params: Type.Array(Type.Number()) }, handler: (params) => { expect(params).type.toBe<number[]>() } },
        time: async (params) => {
          expect(params).type.toBe<unknown>()
          return Date.now()
        }
      },
      concurrency: 1,
      callTimeout: 10_000
    })
  })

  test('without a type provider, params are unknown; the object form takes methods too', async () => {
    const app = Fastify()
    await app.register(wsHub)
    app.wsRoute('/rpc', () => {}, {
      methods: { say: { schema: { params: Type.Object({ text: Type.String() }) }, handler: (params) => { expect(params).type.toBe<unknown>() } } }
    })
    app.wsRoute({ url: '/rpc2', handler: () => {}, methods: { ping: () => 'pong' } })
    expect(app.wsRoute).type.not.toBeCallableWith('/x', () => {}, { methods: { bad: 1 } })
    expect(app.wsRoute).type.not.toBeCallableWith('/x', () => {}, { methods: {}, concurrency: 'all' })
  })

  test('calls and notifications from the server', async () => {
    const app = Fastify()
    await app.register(wsHub)
    app.wsRoute('/rpc', async (conn) => {
      expect(conn.notify('tick', { n: 1 })).type.toBe<Promise<void>>()
      expect(conn.call<number>('add', [1, 2], { timeout: 100 })).type.toBe<Promise<number>>()
      expect(conn.call('add')).type.toBe<Promise<unknown>>()
    }, { methods: {} })
    expect(app.ws.call<string>('id', 'name', {})).type.toBe<Promise<string>>()
    expect(app.ws.notify('id', 'name')).type.toBe<Promise<boolean>>()
    expect(app.ws.to('room').notify('m', [1])).type.toBe<Promise<void>>()
    expect(app.ws.to('room').local().except('id').send('x')).type.toBe<Promise<void>>()
    const err = new RpcError(4001, 'Not allowed', { why: 'x' })
    expect(err.code).type.toBe<number>()
    expect(err.data).type.toBe<unknown>()
    expect(new WSHUB_ERR_RPC_TIMEOUT('m', '10').code).type.toBe<'WSHUB_ERR_RPC_TIMEOUT'>()
    expect(new WSHUB_ERR_CONNECTION_NOT_FOUND('x').statusCode).type.toBe<404>()
  })
})

describe('message hooks', () => {
  test('app-wide and per route; a hook may return a boolean or a promise of one', async () => {
    const audit: OnMessageHook = (conn, message) => {
      expect(conn).type.toBe<BaseConnection>()
      expect(message).type.toBe<Message>()
    }
    const app = Fastify()
    await app.register(wsHub, { onMessage: [audit, async () => false] })
    await app.register(wsHub, { onMessage: audit })
    app.wsRoute('/chat/:room', (conn: Connection<{ Params: { room: string } }>) => { expect(conn.params.room).type.toBe<string>() }, {
      onMessage: [(conn) => conn.rooms.has(conn.params.room), async () => true]
    })
    expect(wsHub).type.not.toBeCallableWith(app, { onMessage: 'audit' })
  })
})
