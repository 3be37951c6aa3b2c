// RUN: dce
// Ops whose results nothing uses go, chains of them included, and inside regions too.
func @main(%p: tensor<i1>, %x: tensor<f64>) {
  %dead1 = exp %x : (tensor<f64>) -> tensor<f64>
  %dead2 = tanh %dead1 : (tensor<f64>) -> tensor<f64>
  %live = neg %x : (tensor<f64>) -> tensor<f64>
  %r = cond %p : (tensor<i1>) -> tensor<f64> {
    %dead3 = exp %live : (tensor<f64>) -> tensor<f64>
    yield %live : (tensor<f64>)
  } else {
    yield %x : (tensor<f64>)
  }
  %dead4 = cond %p : (tensor<i1>) -> tensor<f64> {
    yield %x : (tensor<f64>)
  } else {
    yield %x : (tensor<f64>)
  }
  return %r : (tensor<f64>)
}
// CHECK:      func @main(%arg0: tensor<i1>, %arg1: tensor<f64>) {
// CHECK-NEXT:   [[LIVE:%[0-9]+]] = neg %arg1
// CHECK-NEXT:   [[R:%[0-9]+]] = cond %arg0
// CHECK-NEXT:     yield [[LIVE]]
// CHECK-NEXT:   } else {
// CHECK-NEXT:     yield %arg1
// CHECK-NEXT:   }
// CHECK-NEXT:   return [[R]]
// CHECK-NOT:  exp
// CHECK-NOT:  cond
