// A class handler (Panther style): one instance per connection, connect / receive / disconnect.
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

  async receive (data) {
    if (typeof data !== 'string') return
    const text = data.trim().slice(0, 500)
    if (text === '') return
    // To the whole room, this connection included: everyone sees the same order.
    await this.hub.to(this.state.room).send({ type: 'message', nick: this.state.nick, text, at: Date.now() })
  }

  async disconnect () {
    const members = await this.hub.roomSize(this.state.room)
    await this.hub.to(this.state.room).send({ type: 'left', nick: this.state.nick, members })
    await publishCounts(this.hub)
  }
}

/** Route module: `/chat/:room?nick=...` under the prefix it is registered with. */
export default async function chat (app) {
  app.wsRoute('/chat/:room', ChatSocket)
}
