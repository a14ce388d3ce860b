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
    const room = chatRoom(params.room)
    this.state.nick = nick
    this.state.room = room
    await this.accept()
    // Who is here: every change of the room's presence, made on any node, goes to this page.
    this.state.onPresence = diff => {
      if (diff.room === room) this.send({ type: 'presence', joins: diff.joins, leaves: diff.leaves }).catch(() => {})
    }
    this.hub.on('presence', this.state.onPresence)
    // A page that reconnects says which message it saw last: what came after it is replayed first.
    const { recovered } = await this.join(room, { since: this.query.since })
    await this.track(room, nick, { nick })
    const [members, presence] = await Promise.all([this.hub.roomSize(room), this.hub.presence(room)])
    // Not recovered (a new page, or one away for too long): the recent messages instead.
    const recent = recovered ? [] : (await this.hub.history(room, { limit: 50 })).map(entry => entry.data)
    await this.send({ type: 'welcome', nick, room: params.room, members, id: this.id, recovered, presence, recent })
    await this.broadcast(room, { type: 'joined', nick, members })
    await publishCounts(this.hub)
  }

  async disconnect () {
    this.hub.off('presence', this.state.onPresence)
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

/** Route module: `/chat/:room?nick=...[&since=<offset>]` under the prefix it is registered with. */
export default async function chat (app) {
  app.wsRoute('/chat/:room', ChatSocket, { methods: { say: { schema: { params: SayParams }, handler: say } } })
}
