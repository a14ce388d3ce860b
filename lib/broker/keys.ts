// The names of a room's Redis channel and keys, in one place, for every module that keeps something
// of a room in Redis. Each carries the room name itself as a hash tag, `{<room>}`, so that on a Redis
// Cluster everything of one room (its channel, membership, presence and history) lives in one slot,
// which anyone finds with `CLUSTER KEYSLOT {<room>}`, and rooms spread over the shards.
//
// `P` is the key prefix (`wshub:` by default):
//   P room#{<room>}       the room's channel
//   P members#{<room>}    who is in the room
//   P presence#{<room>}   what connections track in the room
//   P history#{<room>}    the room's recent messages (a stream)

/** The channel of `room`, without the prefix (the broker adds it). */
export function roomChannel (room: string): string {
  return `room#{${room}}`
}

/** The key of `room`'s kind of record (`members`, `presence`, `history`), with the prefix. */
export function roomKey (prefix: string, kind: string, room: string): string {
  return `${prefix}${kind}#{${room}}`
}
