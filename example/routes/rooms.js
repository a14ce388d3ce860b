// HTTP routes that reach the ws side through the hub, as an admin panel or a webhook would.
import { chatRoom, roomCounts, ROOM_NAME } from './shared.js'

/** Route module: `GET /` (rooms and counts) and `POST /:room/announce` under its prefix. */
export default async function rooms (app) {
  app.get('/', async () => ({ rooms: await roomCounts(app.ws) }))

  app.post('/:room/announce', {
    schema: {
      params: { type: 'object', properties: { room: { type: 'string', pattern: ROOM_NAME.source } } },
      body: {
        type: 'object',
        required: ['text'],
        properties: { text: { type: 'string', minLength: 1, maxLength: 500 } }
      }
    }
  }, async (request, reply) => {
    const room = chatRoom(request.params.room)
    await app.ws.to(room).send({ type: 'announce', text: request.body.text, at: Date.now() })
    return reply.code(202).send({ room: request.params.room, members: await app.ws.roomSize(room) })
  })
}
