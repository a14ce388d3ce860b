import { EventEmitter } from 'node:events'

/** What the registry needs of a member: an id. */
export interface Member {
  readonly id: string
}

const EMPTY: ReadonlySet<string> = Object.freeze(new Set<string>())

/**
 * The local indexes of a hub, as a plain data structure with no I/O (after socket.io's in-memory
 * adapter): connections by id, members by room, and rooms by member. It emits `create-room`,
 * `delete-room`, `join-room`, `leave-room` and `remove` so that a broker that keeps cluster-wide presence can
 * follow along.
 *
 * Membership sets are created on a member's first join, so a connection that never joins a room costs
 * no set at all.
 */
export class RoomRegistry<M extends Member> extends EventEmitter {
  /** Members by connection id. */
  readonly connections = new Map<string, M>()
  /** Members by room. */
  readonly rooms = new Map<string, Set<M>>()
  readonly #memberships = new Map<M, Set<string>>()

  /** Adds a member to the id index. */
  add (member: M): void {
    this.connections.set(member.id, member)
  }

  /** Removes a member from every room it is in and from the id index, then emits `remove`. */
  remove (member: M): void {
    const rooms = this.#memberships.get(member)
    if (rooms !== undefined) {
      for (const room of rooms) this.#leaveRoom(member, room)
      this.#memberships.delete(member)
    }
    this.connections.delete(member.id)
    this.emit('remove', member)
  }

  /** Puts a member into a room; returns false when it was already there. */
  join (member: M, room: string): boolean {
    let rooms = this.#memberships.get(member)
    if (rooms === undefined) {
      rooms = new Set()
      this.#memberships.set(member, rooms)
    } else if (rooms.has(room)) {
      return false
    }
    rooms.add(room)
    let members = this.rooms.get(room)
    if (members === undefined) {
      members = new Set()
      this.rooms.set(room, members)
      this.emit('create-room', room)
    }
    members.add(member)
    this.emit('join-room', room, member.id)
    return true
  }

  /** Takes a member out of a room; returns false when it was not there. */
  leave (member: M, room: string): boolean {
    const rooms = this.#memberships.get(member)
    if (rooms === undefined || !rooms.delete(room)) return false
    if (rooms.size === 0) this.#memberships.delete(member)
    this.#leaveRoom(member, room)
    return true
  }

  /** The rooms a member is in (a live, read-only view). */
  roomsOf (member: M): ReadonlySet<string> {
    return this.#memberships.get(member) ?? EMPTY
  }

  #leaveRoom (member: M, room: string): void {
    const members = this.rooms.get(room)
    /* c8 ignore next -- the two indexes are only changed together, so a membership always has its room */
    if (members === undefined) return
    members.delete(member)
    this.emit('leave-room', room, member.id)
    if (members.size === 0) {
      this.rooms.delete(room)
      this.emit('delete-room', room)
    }
  }
}
