// A class handler (Panther style): one instance per connection, connect / disconnect; what the page says
// arrives as a JSON-RPC call of the method "say", validated by its schema, and its reply tells the page
// that the line was delivered.
import { WebSocketHandler } from '../../dist/lib/index.js'
import { chatRoom, publishCounts, ROOM_NAME } from './shared.js'

const NICK = /^[\w .-]{1,24}$/

class ChatSocket extends WebSocketHandler {
  async connect (params) {
    const nick = String(this.query.nick ?? '').trim()
    // Not accepted: the socket is closed with 1008, and the page says why.
    if (!NICK.test(nick) || !ROOM_NAME.test(params.room)) return
    this.state.nick = nick
    this.state.room = chatRoom(params.room)
    await this.accept()
    await this.join(this.state.room)
    const members = await this.hub.roomSize(this.state.room)
    await this.send({ type: 'welcome', nick, room: params.room, members, id: this.id })
    await this.broadcast(this.state.room, { type: 'joined', nick, members })
    await publishCounts(this.hub)
  }

  async disconnect () {
    const members = await this.hub.roomSize(this.state.room)
    await this.hub.to(this.state.room).send({ type: 'left', nick: this.state.nick, members })
    await publishCounts(this.hub)
  }
}

/** The line to say: 1 to 500 characters. */
const SayParams = {
  type: 'object',
  properties: { text: { type: 'string', minLength: 1, maxLength: 500 } },
  required: ['text'],
  additionalProperties: false
}

/** `say`: to the whole room, this connection included, so that everyone sees the same order. */
async function say ({ text }, conn) {
  const at = Date.now()
  await conn.hub.to(conn.state.room).send({ type: 'message', nick: conn.state.nick, from: conn.id, text, at })
  return { delivered: true, at, members: await conn.hub.roomSize(conn.state.room) }
}

/** Route module: `/chat/:room?nick=...` under the prefix it is registered with. */
export default async function chat (app) {
  app.wsRoute('/chat/:room', ChatSocket, { methods: { say: { schema: { params: SayParams }, handler: say } } })
}
