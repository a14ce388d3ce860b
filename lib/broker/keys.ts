// The names of a room's Redis channel and keys, in one place, for every module that keeps something
// of a room in Redis. Each carries the room name itself as a hash tag, `{<room>}`, so that on a Redis
// Cluster everything of one room (its channel, membership, presence and history) lives in one slot,
// which anyone finds with `CLUSTER KEYSLOT {<room>}`, and rooms spread over the shards.
//
// `P` is the key prefix (`wshub:` by default):
//   P room#{<room>}          the room's channel
//   P members#{<room>}#<n>   the ids of the room's members on node <n>
//   P nodes#{<room>}         the nodes that have members in the room, with how many
//   P presence#{<room>}      what connections track in the room
//   P history#{<room>}       the room's recent messages (a stream)
//
// Redis hashes the text between the first `{` and the first `}` after it, so a room whose name holds a
// `}` hashes by what comes before it (`CLUSTER KEYSLOT {a}b}` finds the slot of `a}b` all the same), and
// a name that holds a `{` is unaffected. A name that begins with `}` would leave an empty tag, which
// Redis ignores (it then hashes the whole key, and a room's keys would spread over slots): such rooms
// are written `P <kind>@{@}<room>` instead, the `@` after the kind telling the two forms apart, and all
// of them share the slot of `{@}`. Every name keeps the whole room name, so two rooms never share a key.
//
// Node keys carry the node id (which holds no brace) as their tag:
//   P node#{<n>}#rooms       the rooms where node <n> has members (for its sweep after its death)
//   P nodes                  every node's liveness deadline (a sorted set)

/** The part of a room's names after the kind: `#{<room>}`, or `@{@}<room>` for a name that starts with `}`. */
export function roomTag (room: string): string {
  return room.charCodeAt(0) === 0x7d ? `@{@}${room}` : `#{${room}}`
}

/** The channel of `room`, without the prefix (the broker adds it). */
export function roomChannel (room: string): string {
  return `room${roomTag(room)}`
}

/** The key of `room`'s kind of record (`members`, `presence`, `history`), with the prefix. */
export function roomKey (prefix: string, kind: string, room: string): string {
  return `${prefix}${kind}${roomTag(room)}`
}

/** The key of the ids of `room`'s members on node `node`, with the prefix. */
export function memberKey (prefix: string, room: string, node: string): string {
  return `${prefix}members${roomTag(room)}#${node}`
}

/** The key of a node's record of `kind` (`rooms`), under the node's own hash tag, with the prefix. */
export function nodeKey (prefix: string, kind: string, node: string): string {
  return `${prefix}node#{${node}}#${kind}`
}
