// The page's script: plain browser JavaScript talking JSON over a reconnecting WebSocket from npm
// (partysocket's ReconnectingWebSocket, served by the app from node_modules), no build step.
//
// Every chat message carries its offset in the room's history. When the connection drops (the server
// restarts, or the node the page was on dies), the socket reconnects with a growing delay, and its URL
// function adds ?since=<the last offset seen>: the server replays what the page missed, then goes on live.
// A chat line is a JSON-RPC call of "say"; its reply marks the line as delivered.
/* global document, location, WebSocket */
import ReconnectingWebSocket from '/vendor/reconnecting-websocket.js'

const $ = id => document.getElementById(id)
const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`
const RECONNECT = { minReconnectionDelay: 300, maxReconnectionDelay: 5000, reconnectionDelayGrowFactor: 1.6, connectionTimeout: 3000, minUptime: 1000 }
let chat = null
let myId = null
let nextCall = 0
const calls = new Map() // call id -> what to do with the reply

function line (parts, cls) {
  const p = document.createElement('p')
  if (cls) p.className = cls
  p.append(...parts)
  return p
}
function show (p) {
  $('log').append(p)
  $('log').scrollTop = $('log').scrollHeight
}
/** Calls a method of the chat (JSON-RPC 2.0); `done` gets the response. */
function call (method, params, done) {
  const id = ++nextCall
  calls.set(id, done)
  chat.send(JSON.stringify({ jsonrpc: '2.0', method, params, id }))
}

/** The reply to "say": the line is marked delivered, or the error is shown. */
function said (response) {
  if (response.error) {
    show(line([`Not sent: ${response.error.message}`], 'meta'))
    return
  }
  const p = $('log').querySelector(`p[data-at="${response.result.at}"]`)
  if (p === null) return
  const mark = document.createElement('span')
  mark.className = 'delivered'
  mark.textContent = ` ✓ delivered to ${response.result.members}`
  p.append(mark)
}
const bold = text => { const b = document.createElement('b'); b.textContent = text; return b }

function setConnected (connected, status) {
  $('status').textContent = status
  $('text').disabled = !connected
  $('send').disabled = !connected
  if (connected) $('text').focus()
}

/** One chat session: a room, a nickname, the last offset seen, who is here. */
function join (nick, room) {
  if (chat) chat.close(1000)
  $('log').replaceChildren()
  $('members').replaceChildren()
  let last = null // the offset of the last message seen
  const seen = new Set()
  let presence = null // key -> Map(connection id -> meta), from the welcome and the diffs after it
  let early = [] // diffs that came before this connection's welcome
  let mark = 0 // where this connection's first messages start in the log
  let refused = false

  const socket = new ReconnectingWebSocket(() => {
    const query = new URLSearchParams({ nick })
    if (last !== null) query.set('since', last)
    return `${wsBase}/ws/chat/${encodeURIComponent(room)}?${query}`
  }, [], RECONNECT)
  chat = socket
  setConnected(false, 'connecting...')

  function renderMembers () {
    const names = [...presence.keys()].filter(key => presence.get(key).size > 0).sort()
    // People, not connections: several tabs of one nickname count once.
    if (socket.readyState === WebSocket.OPEN) $('status').textContent = `${nick} in ${room} · ${names.length} here`
    $('members').replaceChildren(...names.map(name => {
      const li = document.createElement('li')
      li.textContent = name === nick ? `${name} (you)` : name
      return li
    }))
  }
  function applyDiff ({ joins, leaves }) {
    for (const [key, entries] of Object.entries(leaves)) for (const { id } of entries) presence.get(key)?.delete(id)
    for (const [key, entries] of Object.entries(joins)) {
      if (!presence.has(key)) presence.set(key, new Map())
      for (const { id, meta } of entries) presence.get(key).set(id, meta)
    }
  }
  function messageLine (m) {
    if (m.type === 'message') {
      const p = line([bold(m.nick), `: ${m.text}`], m.nick === nick ? 'mine' : '')
      if (m.from === myId) p.dataset.at = String(m.at)
      return p
    }
    if (m.type === 'joined' || m.type === 'left') return line([`${m.nick} ${m.type} · ${m.members} here`], 'meta')
    if (m.type === 'announce') return line([`Announcement: ${m.text}`], 'announce')
    return null
  }

  socket.addEventListener('open', () => {
    mark = $('log').children.length
    presence = null
    early = []
  })
  socket.addEventListener('message', event => {
    const m = JSON.parse(event.data)
    if (m.jsonrpc === '2.0' && calls.has(m.id)) {
      const done = calls.get(m.id)
      calls.delete(m.id)
      done(m)
      return
    }
    if (m.type === 'welcome') {
      myId = m.id
      setConnected(true, `${m.nick} in ${m.room} · ${m.members} here`)
      if (!m.recovered) {
        // Not recovered (a new page, or away too long): the recent messages, before what this
        // connection has shown already.
        const before = $('log').children[mark] ?? null
        const insert = p => $('log').insertBefore(p, before)
        insert(line([mark === 0 ? `You joined ${m.room}.` : 'Reconnected; some messages may be missing.'], 'meta'))
        for (const r of m.recent) {
          if (r.offset && seen.has(r.offset)) continue
          if (r.offset) seen.add(r.offset)
          const p = messageLine(r)
          if (p) insert(p)
        }
        if (before === null && m.recent.length > 0) last = m.recent.at(-1).offset ?? last
      }
      presence = new Map()
      applyDiff({ joins: m.presence, leaves: {} })
      for (const diff of early) applyDiff(diff)
      early = []
      renderMembers()
      return
    }
    if (m.type === 'presence') {
      if (presence === null) early.push(m)
      else {
        applyDiff(m)
        renderMembers()
      }
      return
    }
    if (m.offset) {
      if (seen.has(m.offset)) return
      seen.add(m.offset)
      last = m.offset
    }
    const p = messageLine(m)
    if (p) show(p)
  })
  socket.addEventListener('close', event => {
    if (socket !== chat) return
    if (event.code === 1008) {
      // Refused (a bad nickname or room): trying again would not help.
      refused = true
      socket.close()
      setConnected(false, 'refused: check the nickname and room (letters, digits, - and _)')
      return
    }
    if (!refused) setConnected(false, 'reconnecting...')
  })
}

function watchLobby () {
  const lobby = new ReconnectingWebSocket(`${wsBase}/ws/lobby`, [], RECONNECT)
  lobby.addEventListener('message', event => {
    const m = JSON.parse(event.data)
    if (m.type !== 'rooms') return
    const items = m.rooms.map(({ room, members }) => {
      const li = document.createElement('li')
      const a = document.createElement('a')
      a.textContent = room
      a.onclick = () => { $('room').value = room; $('join').requestSubmit() }
      const count = document.createElement('span')
      count.textContent = String(members)
      count.className = 'count'
      li.append(a, count)
      return li
    })
    $('rooms').replaceChildren(...(items.length ? items : [Object.assign(document.createElement('li'), { textContent: 'none yet', className: 'meta' })]))
  })
}

$('join').addEventListener('submit', event => {
  event.preventDefault()
  join($('nick').value.trim(), $('room').value.trim())
})
$('say').addEventListener('submit', event => {
  event.preventDefault()
  const text = $('text').value.trim()
  if (text && chat && chat.readyState === WebSocket.OPEN) call('say', { text }, said)
  $('text').value = ''
})
$('nick').value = `guest${Math.floor(Math.random() * 1000)}`
watchLobby()
