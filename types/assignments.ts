// The type-provider, class-params and get<T> checks as plain assignments and @ts-expect-error
// directives, so that a compiler without the API tstyche needs (TypeScript 7's native tsc) checks them too:
// `npm run test:types` compiles this directory with it after tstyche has run on the declared TypeScript.
import { type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify from 'fastify'
import { Type } from 'typebox'
import wsHub, { WebSocketHandler, type Connection } from 'fastify-ws-hub'

const app = Fastify().withTypeProvider<TypeBoxTypeProvider>()
await app.register(wsHub)

const Query = Type.Object({ token: Type.String() })
app.wsRoute('/b/:bookId', (conn) => {
  const bookId: string = conn.params.bookId
  const token: string = conn.query.token
  // @ts-expect-error Property 'other' does not exist
  conn.query.other?.toString()
  return [bookId, token]
}, {
  schema: { querystring: Query, params: Type.Object({ bookId: Type.String() }) },
  preValidation: async (request) => {
    const token: string = request.query.token
    return token
  }
})

class BookSocket extends WebSocketHandler {
  nick = ''
  override async connect (params: { id: string }): Promise<void> {
    await this.send(params.id)
  }
}
app.wsRoute('/b/:id', BookSocket)
// @ts-expect-error the path names the param bookId, connect() wants id
app.wsRoute('/b/:bookId', BookSocket)

const nick: string | undefined = app.ws.get<BookSocket>('id')?.nick
const room: string | undefined = app.ws.get<Connection<{ Params: { room: string } }>>('id')?.params.room
export { nick, room }
