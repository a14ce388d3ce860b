// What the route modules share: room naming and the lobby feed of live member counts.

/** Chat rooms live in the hub as `chat:<name>`, beside the `lobby` feed room. */
export const chatRoom = name => `chat:${name}`

/** A room name from a URL: 1 to 32 letters, digits, '-' or '_'. */
export const ROOM_NAME = /^[\w-]{1,32}$/

/** The live member count of every chat room, cluster-wide. */
export async function roomCounts (hub) {
  const names = (await hub.rooms()).filter(room => room.startsWith('chat:'))
  const counts = await Promise.all(names.map(async room => ({ room: room.slice(5), members: await hub.roomSize(room) })))
  return counts.sort((a, b) => b.members - a.members || a.room.localeCompare(b.room))
}

/** Tells everyone watching the lobby how many are in each room. */
export async function publishCounts (hub) {
  await hub.to('lobby').send({ type: 'rooms', rooms: await roomCounts(hub) })
}
