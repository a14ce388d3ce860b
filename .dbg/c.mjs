import WebSocket from 'ws'
const ws = new WebSocket('ws://127.0.0.1:40503/feed/stream')
let n = 0
ws.on('message', m => { if (n++ < 3 || String(m).includes('joined')) console.log(String(m)) })
ws.on('error', e => console.log('err', e.message))
ws.on('close', (c) => console.log('close', c))
setTimeout(() => { console.log('total', n); process.exit(0) }, 2000)
