// A function handler (ProAPI / Nexios style): the lobby feed of live member counts.
import { roomCounts } from './shared.js'

/** Route module: `/lobby` sends the rooms with their member counts now and on every change. */
export default async function lobby (app) {
  app.wsRoute('/lobby', async conn => {
    await conn.join('lobby')
    await conn.send({ type: 'rooms', rooms: await roomCounts(app.ws) })
    // Nothing to read: the handler returns and the connection stays open, fed through the 'lobby' room.
  })
}
